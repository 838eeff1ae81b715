"""Generation throughput: the seed-style loop (one `generate` call per prompt) vs `Generator` (batched,
length-grouped, left-padded), on the same prompts and settings, measured side by side in one run.

    .venv/bin/python bench/generation.py [--prompts 32] [--seed-prompts N] [--batch-size 32] [--max-new-tokens 48]
                                         [--dtype float32] [--threads T] [--model embedded]

Prints tokens/s of each and the ratio (target: >= 10x at batch 32 on 2 CPU cores with the embedded model), and the
same for each engine in `--backends` (default `hf,hf-unpacked,hf-paged`: padded `generate` with the prefix cache; the
same with its fp32 CPU linear layers on plain `F.linear` instead of oneDNN-packed weights (`cpu_kernels`); transformers'
continuous batching), all on the same prompts in one run: the numbers behind `backends.DEFAULT_BACKEND`.
The seed loop runs in fp32 (what a plain `from_pretrained` gives on CPU); the engine runs in the dtype
`detect_device` picks (bf16 on CPUs with native bf16). `--same-dtype` runs both in the engine's dtype to
separate the batching gain from the dtype gain. Each side is timed in wall-clock and in process CPU seconds: on a CPU
other jobs share, the wall ratio moves with the load between the two sides, the CPU-time ratio much less.
"""
import argparse, os, platform

from _results import Timer, side, write_results

import torch

from cai_workbench.engine.cpu_kernels import PackedLinears
from cai_workbench.engine.generator import Generator
from cai_workbench.engine.models import encode_chat, load_model
from cai_workbench.inputs.prompts import load_prompts


def seed_loop(model, tok, prompts, max_new_tokens):
    "One prompt at a time, as the seed scripts did."
    n = 0
    for p in prompts:
        ids = torch.tensor([encode_chat(tok, p)])
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=tok.pad_token_id)
        n += out.shape[1] - ids.shape[1]
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--seed-prompts", type=int, default=None, help="time the seed loop on the first N prompts only (default: all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--same-dtype", action="store_true", help="run the seed loop in the engine's dtype too")
    ap.add_argument("--dtype", default=None, help="engine dtype, e.g. float32 (an fp32-only CPU); default: detect_device's")
    ap.add_argument("--backends", default="hf,hf-unpacked,hf-paged", help="engines to time side by side (hf-unpacked: hf without packed linears)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for both sides (default: torch's choice)")
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    prompts = load_prompts("red-team", limit=a.prompts, seed=0).texts
    engine_model, tok = load_model(a.model, device="cpu", dtype=a.dtype)
    seed_model = engine_model if a.same_dtype else load_model(a.model, device="cpu", dtype="float32")[0]
    ns = min(a.seed_prompts or len(prompts), len(prompts))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    load0 = round(os.getloadavg()[0], 1)
    print(f"{cpu}; load average {load0}; {len(prompts)} red-team prompts ({ns} for the seed loop), greedy, "
          f"max_new_tokens={a.max_new_tokens}, torch threads={torch.get_num_threads()}")

    with Timer() as t: n_seed = seed_loop(seed_model, tok, prompts[:ns], a.max_new_tokens)
    rows = [side("seed loop (1 prompt/call)", seed_model.dtype, n_seed, t, prompts=ns)]
    seed = rows[0]
    print(f"seed loop  ({seed_model.dtype}, 1 prompt/call): {n_seed:6d} tokens in {t.wall:7.1f} s = {seed['tok/s']:7.1f} tok/s "
          f"({seed['tok/cpu-s']:.1f} per CPU-s)")
    summary = {"target": ">= 10x", "prompts": len(prompts), "max_new_tokens": a.max_new_tokens, "load_avg_start": load0}
    for backend in a.backends.split(","):
        gen = Generator(engine_model, tok, batch_size=a.batch_size, max_new_tokens=a.max_new_tokens, progress=False,
                        backend="hf" if backend == "hf-unpacked" else backend)
        if backend == "hf-unpacked": gen.backend.packed = PackedLinears(max_mb=0)
        with Timer() as t: outs = gen(prompts)
        row = side(f"Generator {backend} (batch {a.batch_size})", engine_model.dtype, sum(o.completion_tokens for o in outs), t,
                   prompts=len(prompts))
        row["speed-up"] = round(row["tok/s"] / seed["tok/s"], 1)
        row["speed-up (CPU time)"] = round(row["tok/cpu-s"] / seed["tok/cpu-s"], 1)
        rows.append(row); summary[f"{backend} speed-up"] = row["speed-up"]; summary[f"{backend} speed-up (CPU time)"] = row["speed-up (CPU time)"]
        print(f"Generator  {backend:<8} ({engine_model.dtype}, batch {a.batch_size}):  {row['tokens']:6d} tokens in {t.wall:7.1f} s = "
              f"{row['tok/s']:7.1f} tok/s   ratio: {row['speed-up']:.1f}x wall, {row['speed-up (CPU time)']:.1f}x CPU time (target >= 10x)")
    if "hf speed-up" in summary and "hf-unpacked speed-up" in summary:
        summary["packed linears gain"] = round(summary["hf speed-up"] / summary["hf-unpacked speed-up"], 2)
        print(f"packed linears: {summary['packed linears gain']:.2f}x (hf vs hf-unpacked, wall)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    write_results("generation", rows, summary=summary)

if __name__ == "__main__":
    main()
