"""Critique-revision throughput: the seed-style loop (one `model.generate` per prompt per step) vs the stage
(`run_critique_revision`: one batched `Generator.generate` call per step for all prompts), on the same prompts,
constitution, principles, chat templates and decoding settings, measured side by side in one run.

    .venv/bin/python bench/critique_revision.py [--prompts 32] [--max-new-tokens 48] [--rounds 1] [--batch-size 32]
                                                [--dtype float32]
                                                [--seed-prompts N] [--repeats 2] [--same-dtype] [--no-few-shot] [--threads T] [--model embedded]

Prints the generated tokens/s of each and the ratio (target: >= 10x at batch 32 on 2 CPU cores with the embedded
model). Both count completion tokens (EOS included). The seed loop runs in fp32 (a plain `from_pretrained` on CPU);
the stage runs in the dtype `detect_device` picks (bf16 on CPUs with native bf16); `--same-dtype` runs both in the
stage's dtype to separate the batching gain from the dtype gain. `--seed-prompts N` times the seed loop on the
first N prompts only (tokens/s is a rate; the slow loop on all prompts can take many minutes).
The stage is also timed with the `Generator`'s prefix caching off (`prefix_cache_min_tokens=0`: the system prompt +
few-shot conversation every critique and revision chat starts with is then prefilled in every row instead of once
per batch), to show what that buys; `--skip-no-cache` leaves that run out. It is timed once more with its fp32 CPU
linear layers on plain `F.linear` instead of oneDNN-packed weights (`cpu_kernels`); `--skip-unpacked` leaves that out.
And once with transformers' `sdpa` attention instead of `cpu_kernels.cpu_sdpa` (which reads the shared prefix once per
decoding step and does not copy GQA heads); `--skip-sdpa` leaves that out. Each side is timed in wall-clock and in
process CPU seconds: on a CPU other jobs share, the wall ratio moves with the load between the sides, the CPU-time ratio much less.
On a shared virtual machine the speed also drifts by 10-20% within minutes (the same stage took 41 s and 33 s in
runs a minute and a half apart here), so the seed loop and the stage are timed `--repeats` times (default 2), interleaved, and each
side's fastest run is reported (every run's tok/s is printed and kept in the results file); the other sides run once.
"""
import argparse, os, tempfile
from pathlib import Path

import torch
from _results import Timer, side, write_results

from cai_workbench.engine.backends import HFBackend
from cai_workbench.core.run import Run
from cai_workbench.stages.critique_revision import CritiqueRevisionConfig, critique_chat, few_shot_messages, prepare, principle_seed, revision_chat, run_critique_revision
from cai_workbench.engine.generator import GenerationConfig
from cai_workbench.engine.models import encode_chat, load_model


def one(model, tok, chat, max_new_tokens):
    "One conversation, one `generate` call (the seed scripts' way); returns (text, completion tokens)."
    ids = torch.tensor([encode_chat(tok, chat)])
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    new = out[0, ids.shape[1]:]
    return tok.decode(new, skip_special_tokens=True).strip(), int(new.shape[0])


def seed_loop(model, tok, recs, con, cfg):
    "Per prompt: initial answer, then per round a critique and a revision, each its own generate call."
    n = 0
    for r in recs:
        cur, t = one(model, tok, r["prompt"], cfg.generation.max_new_tokens); n += t
        for k in range(1, cfg.rounds + 1):
            p = con.sample(principle_seed(cfg.seed, r["id"], k), k=1)[0]
            shots = few_shot_messages(con, p, cfg)
            crit, t = one(model, tok, critique_chat(r["prompt"], cur, p, shots), cfg.generation.max_new_tokens); n += t
            if cfg.is_converged(crit): break
            cur, t = one(model, tok, revision_chat(r["prompt"], cur, p, shots, crit), cfg.generation.max_new_tokens); n += t
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--seed-prompts", type=int, default=None, help="time the seed loop on this many prompts (default: all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-few-shot", action="store_true")
    ap.add_argument("--skip-no-cache", action="store_true", help="do not also time the stage without prefix caching")
    ap.add_argument("--skip-unpacked", action="store_true", help="do not also time the stage with plain F.linear (no packed linears)")
    ap.add_argument("--skip-sdpa", action="store_true", help="do not also time the stage with transformers' sdpa attention (no cpu_sdpa)")
    ap.add_argument("--repeats", type=int, default=2, help="time the seed loop and the stage this many times, interleaved, and keep each side's fastest run")
    ap.add_argument("--same-dtype", action="store_true", help="run the seed loop in the stage's dtype too")
    ap.add_argument("--dtype", default=None, help="stage dtype, e.g. float32 (an fp32-only CPU); default: detect_device's")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice); 1 wastes less on a busy CPU")
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    cfg = CritiqueRevisionConfig(prompts="red-team", limit=a.prompts, rounds=a.rounds, use_few_shot=not a.no_few_shot,
                         generation=GenerationConfig(max_new_tokens=a.max_new_tokens, batch_size=a.batch_size))
    recs, con = prepare(cfg)
    stage_model, tok = load_model(a.model, device="cpu", dtype=a.dtype)
    seed_model = stage_model if a.same_dtype else load_model(a.model, device="cpu", dtype="float32")[0]
    ns = min(a.seed_prompts or len(recs), len(recs))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"{cpu}; {len(recs)} red-team prompts ({ns} for the seed loop), constitution {con.name!r}, rounds={a.rounds}, "
          f"few-shot={'off' if a.no_few_shot else f'{cfg.max_few_shot} conversation(s)'}, greedy, max_new_tokens={a.max_new_tokens}, "
          f"batch {a.batch_size}; torch threads={torch.get_num_threads()}, cpus={os.cpu_count()}, load avg={os.getloadavg()[0]:.1f}")

    load0 = round(os.getloadavg()[0], 1)
    def seed_side():
        with Timer() as t: n = seed_loop(seed_model, tok, recs[:ns], con, cfg)
        return side("seed loop (1 prompt/call)", seed_model.dtype, n, t, prompts=ns)
    def stage_side(name, c):
        with tempfile.TemporaryDirectory() as d, Timer() as t:
            res = run_critique_revision(Run.create(Path(d)/"bench"), c, model=(stage_model, tok), prompts=recs, progress=False)
        return side(name, stage_model.dtype, sum(r["total_tokens"] for r in res.records), t, prompts=len(recs))
    runs = {"seed": [], "stage": []}
    for k in range(a.repeats):                    # the two sides the target compares, interleaved; the faster run of each is kept
        runs["seed"].append(seed_side()); runs["stage"].append(stage_side(f"stage (batch {a.batch_size}/call)", cfg))
        print(f"run {k + 1}: seed loop {runs['seed'][-1]['tok/s']} tok/s, stage {runs['stage'][-1]['tok/s']} tok/s, load avg {os.getloadavg()[0]:.1f}")
    best = {k: max(v, key=lambda r: r["tok/s"]) | ({"runs tok/s": [r["tok/s"] for r in v]} if a.repeats > 1 else {}) for k, v in runs.items()}
    rows = [best["seed"], best["stage"]]
    def stage(name, c):
        rows.append(row := stage_side(name, c)); return row
    st, last = rows[1], runs["stage"][-1]          # the ablations below are compared with the stage run just before them
    if not a.skip_unpacked:
        HFBackend.packed_linear_mb, mb = 0, HFBackend.packed_linear_mb
        try: unpacked = stage("stage without packed linears", cfg)
        finally: HFBackend.packed_linear_mb = mb
    if not a.skip_sdpa:
        HFBackend.fast_cpu_attention = False
        try: sdpa = stage("stage with transformers' sdpa", cfg)
        finally: HFBackend.fast_cpu_attention = True
    if not a.skip_no_cache: plain = stage("stage without prefix cache", cfg.replace(generation=cfg.generation.replace(prefix_cache_min_tokens=0)))
    for r in rows[1:]:
        r["speed-up"] = round(r["tok/s"] / rows[0]["tok/s"], 1)
        r["speed-up (CPU time)"] = round(r["tok/cpu-s"] / rows[0]["tok/cpu-s"], 1)
    for r in rows:
        print(f"{r['side']:<32} ({r['dtype']}): {r['tokens']:6d} tokens in {r['wall s']:7.1f} s = {r['tok/s']:7.1f} tok/s, "
              f"{r['tok/cpu-s']:7.1f} per CPU-s" + (f"   speed-up {r['speed-up']}x wall, {r['speed-up (CPU time)']}x CPU time" if "speed-up" in r else ""))
    if not a.skip_no_cache: print(f"prefix caching: {last['tok/s'] / plain['tok/s']:.2f}x (wall), {last['tok/cpu-s'] / plain['tok/cpu-s']:.2f}x (CPU time), against the stage's last run")
    if not a.skip_sdpa: print(f"cpu_sdpa attention: {last['tok/s'] / sdpa['tok/s']:.2f}x (wall), {last['tok/cpu-s'] / sdpa['tok/cpu-s']:.2f}x (CPU time), against the stage's last run")
    if not a.skip_unpacked: print(f"packed linears: {last['tok/s'] / unpacked['tok/s']:.2f}x (wall), {last['tok/cpu-s'] / unpacked['tok/cpu-s']:.2f}x (CPU time), against the stage's last run")
    print(f"load avg at the start {load0}, now {os.getloadavg()[0]:.1f} (other processes share the CPU)")
    write_results("critique_revision", rows, summary={"speed-up": st["speed-up"], "speed-up (CPU time)": st["speed-up (CPU time)"],
                                                      "target": ">= 10x", "rounds": a.rounds, "repeats": a.repeats, "load_avg_start": load0})


if __name__ == "__main__":
    main()
