"""The embedded model on this machine: converting its GGUF file once, loading the cached safetensors copy, and
generation throughput in fp32 and in bf16, measured in one run.

    .venv/bin/python bench/embedded.py [--prompts 16] [--max-new-tokens 32] [--threads T]

The conversion runs into a temporary cache folder (`$CAI_WORKBENCH_CACHE`), so the real cache is untouched; the
cached load is timed from that folder. Generation uses `Generator` (batched, greedy) on the same red-team prompts in
each dtype. bf16 is measured only where `environment.cpu_has_fast_bf16()` says the CPU runs it natively
(AVX512-BF16 or AMX): elsewhere torch emulates bf16, which is slower than fp32, and that is not the number
`detect_device`'s choice rests on, so the row says "not available here". Writes bench/results/embedded.json
(shown by 00a_environment and 02_models).
"""
import argparse, os, tempfile

from _results import Timer, side, write_results

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    load0 = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CAI_WORKBENCH_CACHE"] = cache                 # read when called: the conversion goes here
        from cai_workbench.core.environment import cpu_has_fast_bf16
        from cai_workbench.engine.generator import Generator
        from cai_workbench.engine.embedded import ensure_embedded
        from cai_workbench.engine.models import load_model
        from cai_workbench.inputs.prompts import load_prompts
        with Timer() as t: ensure_embedded(progress=False)
        rows = [{"step": "convert GGUF -> safetensors (once)", "dtype": "float32", "wall s": round(t.wall, 1), "cpu s": round(t.cpu, 1)}]
        with Timer() as t: model, tok = load_model("embedded", device="cpu", dtype="float32")
        rows.append({"step": "load the cached copy", "dtype": "float32", "wall s": round(t.wall, 1), "cpu s": round(t.cpu, 1)})
        prompts = load_prompts("red-team", limit=a.prompts, seed=0).texts
        gen = Generator(model, tok, batch_size=len(prompts), max_new_tokens=a.max_new_tokens, progress=False)
        with Timer() as t: outs = gen(prompts)
        fp32 = side("generate", model.dtype, sum(o.completion_tokens for o in outs), t, prompts=len(prompts))
        rows.append({"step": "generate", **{k: v for k, v in fp32.items() if k != "side"}})
        summary = {"prompts": len(prompts), "max_new_tokens": a.max_new_tokens, "native bf16": cpu_has_fast_bf16(), "load_avg_start": load0}
        if cpu_has_fast_bf16():
            m16, _ = load_model("embedded", device="cpu", dtype="bfloat16")
            gen = Generator(m16, tok, batch_size=len(prompts), max_new_tokens=a.max_new_tokens, progress=False)
            with Timer() as t: outs = gen(prompts)
            bf16 = side("generate", m16.dtype, sum(o.completion_tokens for o in outs), t, prompts=len(prompts))
            rows.append({"step": "generate", **{k: v for k, v in bf16.items() if k != "side"}})
            summary["bf16 / fp32 tok/s"] = round(bf16["tok/s"] / fp32["tok/s"], 2)
            summary["bf16 / fp32 tok/cpu-s"] = round(bf16["tok/cpu-s"] / fp32["tok/cpu-s"], 2)
        else:
            rows.append({"step": "generate", "dtype": "torch.bfloat16", "tokens": "not available here: no native bf16 (AVX512-BF16/AMX) on this CPU"})
            summary["bf16 / fp32 tok/s"] = "not available here"
    for r in rows: print(r)
    print(f"load average: {load0} at the start, {os.getloadavg()[0]:.2f} at the end")
    write_results("embedded", rows, summary=summary,
                  notes="convert and load: wall and CPU seconds; generate: batched greedy `Generator`, one batch")


if __name__ == "__main__":
    main()
