"""Critique-revision throughput: the seed-style loop (one `model.generate` per prompt per step) vs the stage
(`run_critique_revision`: one batched `Generator.generate` call per step for all prompts), on the same prompts,
constitution, principles, chat templates and decoding settings, measured side by side in one run.

    .venv/bin/python bench/critique_revision.py [--prompts 32] [--max-new-tokens 48] [--rounds 1] [--batch-size 32]
                                                [--dtype float32]
                                                [--seed-prompts N] [--same-dtype] [--no-few-shot] [--threads T] [--model embedded]

Prints the generated tokens/s of each and the ratio (target: >= 10x at batch 32 on 2 CPU cores with the embedded
model). Both count completion tokens (EOS included). The seed loop runs in fp32 (a plain `from_pretrained` on CPU);
the stage runs in the dtype `detect_device` picks (bf16 on CPUs with native bf16); `--same-dtype` runs both in the
stage's dtype to separate the batching gain from the dtype gain. `--seed-prompts N` times the seed loop on the
first N prompts only (tokens/s is a rate; the slow loop on all prompts can take many minutes).
The stage is also timed with the `Generator`'s prefix caching off (`prefix_cache_min_tokens=0`: the system prompt +
few-shot conversation every critique and revision chat starts with is then prefilled in every row instead of once
per batch), to show what that buys; `--skip-no-cache` leaves that run out.
"""
import argparse, os, tempfile, time
from pathlib import Path

import torch
from _results import write_results

from cai_workbench.core import Run
from cai_workbench.critique import CritiqueConfig, critique_chat, few_shot_messages, prepare, principle_seed, revision_chat, run_critique_revision
from cai_workbench.models import GenerationConfig, encode_chat, load_model


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
    ap.add_argument("--same-dtype", action="store_true", help="run the seed loop in the stage's dtype too")
    ap.add_argument("--dtype", default=None, help="stage dtype, e.g. float32 (an fp32-only CPU); default: detect_device's")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice); 1 wastes less on a busy CPU")
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    cfg = CritiqueConfig(prompts="red-team", limit=a.prompts, rounds=a.rounds, use_few_shot=not a.no_few_shot,
                         generation=GenerationConfig(max_new_tokens=a.max_new_tokens, batch_size=a.batch_size))
    recs, con = prepare(cfg)
    stage_model, tok = load_model(a.model, device="cpu", dtype=a.dtype)
    seed_model = stage_model if a.same_dtype else load_model(a.model, device="cpu", dtype="float32")[0]
    ns = min(a.seed_prompts or len(recs), len(recs))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"{cpu}; {len(recs)} red-team prompts ({ns} for the seed loop), constitution {con.name!r}, rounds={a.rounds}, "
          f"few-shot={'off' if a.no_few_shot else f'{cfg.max_few_shot} conversation(s)'}, greedy, max_new_tokens={a.max_new_tokens}, "
          f"batch {a.batch_size}; torch threads={torch.get_num_threads()}, cpus={os.cpu_count()}, load avg={os.getloadavg()[0]:.1f}")

    t = time.perf_counter(); n_seed = seed_loop(seed_model, tok, recs[:ns], con, cfg); t_seed = time.perf_counter() - t
    def stage(c):
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            res = run_critique_revision(Run.create(Path(d)/"bench"), c, model=(stage_model, tok), prompts=recs, progress=False)
            return sum(r["total_tokens"] for r in res.records), time.perf_counter() - t
    n_stage, t_stage = stage(cfg)
    if not a.skip_no_cache:
        n_plain, t_plain = stage(cfg.replace(generation=cfg.generation.replace(prefix_cache_min_tokens=0)))

    seed_tps, stage_tps = n_seed / t_seed, n_stage / t_stage
    print(f"seed loop ({seed_model.dtype}, 1 prompt/call):   {n_seed:6d} tokens in {t_seed:7.1f} s = {seed_tps:7.1f} tok/s")
    print(f"stage     ({stage_model.dtype}, batch {a.batch_size}/call): {n_stage:6d} tokens in {t_stage:7.1f} s = {stage_tps:7.1f} tok/s")
    if not a.skip_no_cache:
        print(f"stage without prefix cache:           {n_plain:6d} tokens in {t_plain:7.1f} s = {n_plain/t_plain:7.1f} tok/s "
              f"(prefix caching: {stage_tps/(n_plain/t_plain):.2f}x; without it the speed-up is {n_plain/t_plain/seed_tps:.1f}x)")
    print(f"speed-up: {stage_tps / seed_tps:.1f}x  (load avg now {os.getloadavg()[0]:.1f}; other processes share the CPU)")
    rows = [{"side": "seed loop (1 prompt/call)", "dtype": str(seed_model.dtype), "prompts": ns, "tokens": n_seed, "s": round(t_seed, 1), "tok/s": round(seed_tps, 1)},
            {"side": f"stage (batch {a.batch_size}/call)", "dtype": str(stage_model.dtype), "prompts": len(recs), "tokens": n_stage, "s": round(t_stage, 1), "tok/s": round(stage_tps, 1)}]
    if not a.skip_no_cache:
        rows.append({"side": "stage without prefix cache", "dtype": str(stage_model.dtype), "prompts": len(recs), "tokens": n_plain,
                     "s": round(t_plain, 1), "tok/s": round(n_plain / t_plain, 1)})
    write_results("critique_revision", rows, summary={"speed-up": round(stage_tps / seed_tps, 1), "target": ">= 10x", "rounds": a.rounds})


if __name__ == "__main__":
    main()
