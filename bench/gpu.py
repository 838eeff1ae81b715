"""GPU figures, measured side by side in one run: generation tokens/s of the seed-style per-prompt loop vs the `hf`
and `hf-paged` engines on randomly initialised models of real shape (Qwen2-0.5B and -1.5B), peak CUDA memory of one
PPO update (ours vs four full models, via bench/ppo_memory.py), and SFT step throughput.

    python bench/gpu.py [--shapes 0.5b,1.5b] [--batch-size 64] [--max-new-tokens 64] [--loop-prompts 8] [--out results.json]

Models are built from configs (no hub): random weights give the right speed and memory figures, not sensible text.
Outputs are fixed-length in practice (a random model of 151,936 tokens almost never draws the EOS id; the counts
printed are the tokens really generated). Targets: `hf` or `hf-paged` >= 20x the per-prompt loop at batch 64; PPO
peak memory <= 0.4x the four-model design. `--device cpu --shapes tiny` checks the script itself on a CPU.
Prints the GPU, torch/transformers versions and a JSON results file (with the date) for the notebooks to read.
"""
import argparse, datetime, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

import torch

SHAPES = {  # Qwen2 family shapes (hidden, layers, heads, kv heads, MLP), vocab 151,936, tied embeddings
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128, vocab_size=1000),
    "0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, intermediate_size=4864, vocab_size=151936),
    "1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2, intermediate_size=8960, vocab_size=151936),
}


def build(shape: str, path: Path, device: str) -> Path:
    "Save a randomly initialised Qwen2-style model of `shape` (with the tiny test tokenizer) to `path`."
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from cai_workbench.engine.embedded import tiny_model
    _, tok = tiny_model()
    torch.manual_seed(0)
    cfg = Qwen2Config(**SHAPES[shape], tie_word_embeddings=True, max_position_embeddings=4096,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    with torch.device(device): m = Qwen2ForCausalLM(cfg)
    m.save_pretrained(path); tok.save_pretrained(path)
    return path


def sync(device):
    if device == "cuda": torch.cuda.synchronize()


def loop_tok_s(model, tok, prompts, max_new_tokens, device) -> float:
    "The seed scripts' way: one `generate` call per prompt."
    from cai_workbench.engine.models import encode_chat
    n, t = 0, time.perf_counter()
    for p in prompts:
        ids = torch.tensor([encode_chat(tok, p)], device=device)
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        n += out.shape[1] - ids.shape[1]
    sync(device)
    return n / (time.perf_counter() - t)


def engine_tok_s(model, tok, prompts, max_new_tokens, batch_size, backend, device) -> float:
    from cai_workbench.engine.generator import Generator
    gen = Generator(model, tok, batch_size=batch_size, max_new_tokens=max_new_tokens, progress=False, backend=backend)
    gen(prompts[:batch_size // 4 or 1])                                        # warm-up (kernels, allocator)
    sync(device); t = time.perf_counter()
    outs = gen(prompts)
    sync(device)
    return sum(o.completion_tokens for o in outs) / (time.perf_counter() - t)


def sft_steps(path, device, steps=8, batch=8, max_length=256) -> dict:
    "SFT (TRL, LoRA) on `steps` batches of synthetic revisions; steps/s and tokens/s after the first step."
    from cai_workbench.core.run import Run
    from cai_workbench.stages.sft import SFTConfig, run_sft
    with tempfile.TemporaryDirectory() as d:
        run = Run.create(Path(d)/"run")
        (run.path/"critique_revision").mkdir()
        rows = [{"prompt": [{"role": "user", "content": f"question {i} " + "about this " * 20}],
                 "completion": [{"role": "assistant", "content": f"answer {i} " + "carefully " * 40}]} for i in range(steps * batch)]
        (run.path/"critique_revision"/"sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        t = time.perf_counter()
        run_sft(run, SFTConfig(max_steps=steps, batch_size=batch, max_length=max_length, device=device), model=str(path), progress=False)
        wall = time.perf_counter() - t
    return {"steps": steps, "batch_size": batch, "max_length": max_length, "wall_s": round(wall, 1), "steps_per_s": round(steps / wall, 3)}


def ppo_memory(path, device, prompts=8, max_new_tokens=64) -> dict:
    "bench/ppo_memory.py on this model: each design in its own process."
    here = Path(__file__).parent
    out = subprocess.run([sys.executable, str(here/"ppo_memory.py"), "--model", str(path), "--device", device,
                          "--prompts", str(prompts), "--max-new-tokens", str(max_new_tokens), "--modes", "ours-shared,seed",
                          "--threads", "0"], capture_output=True, text=True)
    print(out.stdout[-2000:])
    if out.returncode != 0: return {"error": out.stderr[-1500:]}
    ratio = [l for l in out.stdout.splitlines() if l.startswith("ours-shared / seed")]
    return {"report": out.stdout.strip().splitlines()[-8:], "ratio_line": ratio[0] if ratio else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shapes", default="0.5b,1.5b")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--loop-prompts", type=int, default=8, help="the per-prompt loop's rate is measured on this many prompts")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: generation,ppo,sft")
    ap.add_argument("--out", default=None, help="results JSON (default: bench/results/gpu-<date>.json)")
    a = ap.parse_args()
    from cai_workbench.engine.models import load_model
    from cai_workbench.inputs.prompts import load_prompts
    import transformers
    gpu = torch.cuda.get_device_name(0) if a.device == "cuda" else platform.processor() or "cpu"
    res = {"date": datetime.date.today().isoformat(), "device": gpu, "torch": torch.__version__,
           "transformers": transformers.__version__, "batch_size": a.batch_size, "max_new_tokens": a.max_new_tokens, "shapes": {}}
    print(f"{gpu}; torch {torch.__version__}; transformers {transformers.__version__}")
    prompts = (load_prompts("red-team", seed=0).texts * 4)[:a.batch_size]
    skip = set(filter(None, a.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        for shape in a.shapes.split(","):
            path = build(shape, Path(tmp)/shape, a.device)
            r = res["shapes"][shape] = {}
            if "generation" not in skip:
                model, tok = load_model(str(path), device=a.device)
                r["dtype"] = str(model.dtype)
                r["loop_tok_s"] = loop_tok_s(model, tok, prompts[:a.loop_prompts], a.max_new_tokens, a.device)
                for backend in ("hf", "hf-paged"):
                    try: r[f"{backend}_tok_s"] = engine_tok_s(model, tok, prompts, a.max_new_tokens, a.batch_size, backend, a.device)
                    except Exception as e: r[f"{backend}_error"] = f"{type(e).__name__}: {str(e)[:300]}"
                best = max((r.get("hf_tok_s", 0), r.get("hf-paged_tok_s", 0)))
                r["best_ratio"] = best / r["loop_tok_s"]
                print(f"{shape} ({r['dtype']}): loop {r['loop_tok_s']:.1f} tok/s | hf {r.get('hf_tok_s', float('nan')):.1f} | "
                      f"hf-paged {r.get('hf-paged_tok_s', float('nan')):.1f} tok/s -> best {r['best_ratio']:.1f}x the loop "
                      f"(target >= 20x at batch {a.batch_size}: {'met' if r['best_ratio'] >= 20 else 'NOT met'})")
                del model; torch.cuda.empty_cache() if a.device == "cuda" else None
            if "ppo" not in skip and shape == a.shapes.split(",")[0]:
                r["ppo_memory"] = ppo_memory(path, a.device)
            if "sft" not in skip and shape == a.shapes.split(",")[0]:
                r["sft"] = sft_steps(path, a.device)
                print(f"{shape} SFT: {r['sft']}")
    out = Path(a.out or Path(__file__).parent/"results"/f"gpu-{res['date']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str) + "\n")
    print(f"results: {out}")
    return res


if __name__ == "__main__":
    main()
