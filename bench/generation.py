"""Generation throughput: the seed-style loop (one `generate` call per prompt) vs `Generator` (batched,
length-grouped, left-padded), on the same prompts and settings, measured side by side in one run.

    .venv/bin/python bench/generation.py [--prompts 32] [--batch-size 32] [--max-new-tokens 48] [--model embedded]

Prints tokens/s of each and the ratio (target: >= 10x at batch 32 on 2 CPU cores with the embedded model), and the
same for each engine in `--backends` (default `hf,hf-paged`: padded `generate` with the prefix cache vs transformers'
continuous batching), all on the same prompts in one run: the numbers behind `backends.DEFAULT_BACKEND`.
The seed loop runs in fp32 (what a plain `from_pretrained` gives on CPU); the engine runs in the dtype
`detect_device` picks (bf16 on CPUs with native bf16). `--same-dtype` runs both in the engine's dtype to
separate the batching gain from the dtype gain.
"""
import argparse, os, platform, time

from _results import write_results

import torch

from cai_workbench.models import Generator, encode_chat, load_model
from cai_workbench.prompts import load_prompts


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
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--same-dtype", action="store_true", help="run the seed loop in the engine's dtype too")
    ap.add_argument("--dtype", default=None, help="engine dtype, e.g. float32 (an fp32-only CPU); default: detect_device's")
    ap.add_argument("--backends", default="hf,hf-paged", help="engines to time side by side")
    a = ap.parse_args()
    prompts = load_prompts("red-team", limit=a.prompts, seed=0).texts
    engine_model, tok = load_model(a.model, device="cpu", dtype=a.dtype)
    seed_model = engine_model if a.same_dtype else load_model(a.model, device="cpu", dtype="float32")[0]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print(f"{cpu}; load average {os.getloadavg()[0]:.1f}; {len(prompts)} red-team prompts, greedy, "
          f"max_new_tokens={a.max_new_tokens}, torch threads={torch.get_num_threads()}")

    t = time.perf_counter(); n_seed = seed_loop(seed_model, tok, prompts, a.max_new_tokens); t_seed = time.perf_counter() - t
    seed_tps = n_seed / t_seed
    print(f"seed loop  ({seed_model.dtype}, 1 prompt/call): {n_seed:6d} tokens in {t_seed:7.1f} s = {seed_tps:7.1f} tok/s")
    rows = [{"side": "seed loop (1 prompt/call)", "dtype": str(seed_model.dtype), "tokens": n_seed, "s": round(t_seed, 2), "tok/s": round(seed_tps, 1)}]
    for backend in a.backends.split(","):
        gen = Generator(engine_model, tok, batch_size=a.batch_size, max_new_tokens=a.max_new_tokens, progress=False, backend=backend)
        t = time.perf_counter(); outs = gen(prompts); t_eng = time.perf_counter() - t
        n_eng = sum(o.completion_tokens for o in outs)
        eng_tps = n_eng / t_eng
        print(f"Generator  {backend:<8} ({engine_model.dtype}, batch {a.batch_size}):  {n_eng:6d} tokens in {t_eng:7.1f} s = "
              f"{eng_tps:7.1f} tok/s   ratio: {eng_tps / seed_tps:.1f}x (target >= 10x)")
        rows.append({"side": f"Generator {backend} (batch {a.batch_size})", "dtype": str(engine_model.dtype), "tokens": n_eng,
                     "s": round(t_eng, 2), "tok/s": round(eng_tps, 1), "speed-up": round(eng_tps / seed_tps, 1)})
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    write_results("generation", rows, summary={"target": ">= 10x", "prompts": len(prompts), "max_new_tokens": a.max_new_tokens})

if __name__ == "__main__":
    main()
