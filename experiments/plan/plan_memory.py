"""Check `launch.plan`'s memory model against measured peaks: one process per (model, stage workload), the peak increase over the
loaded model (CPU: peak RSS via resource/psutil; CUDA: torch.cuda.max_memory_allocated), next to what `stage_memory` predicts.

The workloads are each stage's memory-heavy step written out (LoRA + AdamW training steps on B x S tokens for sft, chosen+rejected
for dpo, a scalar head for reward_model, `generate` for the generation stages), on random weights of the model's shape
(built from its packaged config), so the check runs offline in minutes on a CPU."""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from experiments._common import recorded_command  # noqa: E402

MODELS = {"embedded": dict(B=4, S=128, P=32, N=16), "Qwen/Qwen2.5-0.5B-Instruct": dict(B=2, S=64, P=32, N=8)}
STAGES = ["sft", "dpo", "reward_model", "generation"]


def _rss() -> int:
    import psutil; return psutil.Process().memory_info().rss

def _peak_rss() -> int: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss*1024   # Linux: KiB


def one(model: str, stage: str, device: str) -> dict:
    "Measure one workload in this process; returns {'measured', 'predicted', 'parts'} in bytes."
    import torch
    from transformers import AutoModelForCausalLM
    from cai_workbench.engine.models import LoraSpec
    from cai_workbench.launch.plan import model_config, model_shape, stage_memory
    from cai_workbench.pipeline import PipelineConfig
    torch.manual_seed(0); torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    k, dt = MODELS[model], (torch.float32 if device == "cpu" else torch.bfloat16)
    m = AutoModelForCausalLM.from_config(model_config(model), dtype=dt).to(device)   # random weights of the model's shape
    V, cuda = m.config.vocab_size, device == "cuda"
    base = torch.cuda.memory_allocated() if cuda else _rss()
    if cuda: torch.cuda.reset_peak_memory_stats()
    B, S = k["B"], k["S"]
    ids = lambda b, s: torch.randint(0, V, (b, s), device=device)
    if stage == "generation":
        with torch.no_grad(): m.generate(ids(B, k["P"]), attention_mask=torch.ones(B, k["P"], dtype=torch.long, device=device),
                                         max_new_tokens=k["N"], min_new_tokens=k["N"], do_sample=False, pad_token_id=0)
        sec, name = {"generation": {"batch_size": B, "max_new_tokens": k["N"], "max_prompt_tokens": k["P"]}}, "evaluation"
    else:
        from peft import get_peft_model
        spec = LoraSpec()
        pm = get_peft_model(m, spec.peft_config("SEQ_CLS" if stage == "reward_model" else "CAUSAL_LM"))
        head = torch.nn.Linear(m.config.hidden_size, 1, device=device)
        opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad] + list(head.parameters()), lr=1e-4)
        rows = B if stage == "sft" else 2*B
        for _ in range(2):
            x = ids(rows, S)
            if stage == "reward_model":
                h = pm.base_model.model.model(input_ids=x).last_hidden_state
                loss = -torch.nn.functional.logsigmoid(head(h[:, -1]).view(2, B)[0] - head(h[:, -1]).view(2, B)[1]).mean()
            elif stage == "sft": loss = pm(input_ids=x, labels=x).loss
            else:
                lp = torch.log_softmax(pm(input_ids=x).logits.float(), -1).gather(-1, x[..., None]).squeeze(-1).sum(-1)
                loss = -torch.nn.functional.logsigmoid(lp[:B] - lp[B:]).mean()
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        sec, name = {"batch_size": B, "max_length": S, "gradient_checkpointing": False, "lora": spec.to_dict()}, stage
        if stage == "dpo": sec["start_from"] = "base"
    measured = (torch.cuda.max_memory_allocated() if cuda else _peak_rss()) - base
    cfg = PipelineConfig(model=model, stages=[name])
    mem = stage_memory(cfg, name, "cpu" if not cuda else "cuda", section={**sec, "dtype": "float32" if not cuda else "bfloat16"},
                       shape=model_shape(model))
    parts = {k2: v for k2, v in mem.parts().items() if not k2.startswith("weights")}   # the loaded model is the baseline
    return {"model": model, "stage": stage, "device": device, "shape": k, "measured": measured, "predicted": sum(parts.values()),
            "parts": parts}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="write the results JSON here (e.g. nbs/plan_results/memory.json)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="cuda when a GPU is present (auto), else cpu")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES)
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "STAGE"), help=argparse.SUPPRESS)   # the child process
    a = ap.parse_args(argv)
    import torch
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    if a.one: print(json.dumps(one(*a.one, dev))); return
    rows, t0 = [], time.time()
    for model in a.models:
        for stage in a.stages:
            r = subprocess.run([sys.executable, __file__, "--device", dev, "--one", model, stage], capture_output=True, text=True, cwd=REPO)
            if r.returncode: raise SystemExit(f"{model} {stage}: {r.stderr[-2000:]}")
            row = json.loads(r.stdout.strip().splitlines()[-1]); row["ratio"] = round(row["predicted"]/max(row["measured"], 1), 3)
            rows.append(row); print(f"{model:<28} {stage:<13} measured {row['measured']/1e6:8.1f} MB  predicted {row['predicted']/1e6:8.1f} MB  ratio {row['ratio']}")
    out = {"what": "peak memory increase over the loaded model per stage workload (CPU: peak RSS; CUDA: max_memory_allocated) vs launch.plan.stage_memory",
           "device": dev, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "wall_s": round(time.time() - t0, 1),
           "command": recorded_command(__file__, sys.argv[1:]), "off_by_more_than_30pct": [f"{r['model']} {r['stage']}" for r in rows if abs(r["ratio"] - 1) > 0.3],
           "rows": rows}
    if a.out: a.out.parent.mkdir(parents=True, exist_ok=True); a.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
