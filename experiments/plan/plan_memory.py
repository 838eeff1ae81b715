"""Check `launch.plan`'s memory model against measured peaks: one process per (model, stage workload), the peak increase over the
loaded model (CPU: peak RSS — VmHWM, reset after loading — and the peak of live tensor bytes counted by a dispatch mode — the CPU analogue of
CUDA's max_memory_allocated; CUDA: torch.cuda.max_memory_allocated), next to what `stage_memory` predicts for that
phase (static parts other than the weights, which are the baseline, + the phase's parts). `--mmap-threshold` runs the
children with glibc's MALLOC_MMAP_THRESHOLD_ fixed, so freed large blocks go back to the system and RSS follows the live tensors.

The workloads are each stage's memory-heavy step written out (LoRA + AdamW training steps on B x S tokens for sft, chosen+rejected
for dpo, a scalar head for reward_model, `generate` for the generation stages), on random weights of the model's shape
(built from its packaged config), so the check runs offline in minutes on a CPU."""
import argparse, json, os, re, resource, subprocess, sys, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from experiments._common import recorded_command  # noqa: E402

MODELS = {"embedded": dict(B=4, S=128, P=32, N=16), "Qwen/Qwen2.5-0.5B-Instruct": dict(B=2, S=64, P=32, N=8)}
STAGES = ["sft", "dpo", "reward_model", "generation"]


def _rss() -> int:
    import psutil; return psutil.Process().memory_info().rss

def _reset_peak_rss() -> bool:
    "Start the peak RSS (VmHWM) at the current RSS (Linux >= 4.0), so loading the model's own transient does not count; False where it cannot."
    try: Path("/proc/self/clear_refs").write_text("5"); return True
    except OSError: return False

def _peak_rss() -> int:
    "Peak RSS in bytes: VmHWM (reset by `_reset_peak_rss`), else the process's lifetime maximum."
    try: return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))*1024
    except (OSError, AttributeError): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss*1024   # Linux: KiB


def live_tensors(known=()):
    "A dispatch mode counting the bytes of live tensor storages made under it (views and in-place results excluded): `.peak`, `.top()`."
    import collections, weakref
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Live(TorchDispatchMode):
        def __init__(self): super().__init__(); self.live, self.cur, self.peak, self.at, self.known = {}, 0, 0, [], set(known)
        def _free(self, k): self.cur -= self.live.pop(k, (0,))[0]
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            ins = {a.untyped_storage().data_ptr() for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)}
            for t in tree_flatten(out)[0]:
                if not isinstance(t, torch.Tensor): continue
                st = t.untyped_storage(); k, n = st.data_ptr(), st.nbytes()
                if n and k not in self.live and k not in ins and k not in self.known:
                    self.live[k] = (n, f"{func.__name__} {tuple(t.shape)} {t.dtype}".replace("torch.", "")); self.cur += n
                    weakref.finalize(st, self._free, k)
            if self.cur > self.peak: self.peak, self.at = self.cur, list(self.live.values())
            return out
        def top(self, k=8) -> dict:
            "The largest groups of tensors alive at the peak: {'op shape dtype': MB}."
            g = collections.Counter()
            for n, what in self.at: g[what] += n
            return {w: round(n/1e6, 1) for w, n in g.most_common(k)}
    return Live()


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
    reset = cuda or _reset_peak_rss()      # from_config's own transient (up to one embedding matrix) is above the loaded model: not the stage's
    if cuda: torch.cuda.reset_peak_memory_stats()
    live = None if cuda else live_tensors(x.untyped_storage().data_ptr() for x in [*m.parameters(), *m.buffers()])
    if live: live.__enter__()
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
    if live: live.__exit__(None, None, None)
    cfg = PipelineConfig(model=model, stages=[name])
    mem = stage_memory(cfg, name, "cpu" if not cuda else "cuda", section={**sec, "dtype": "float32" if not cuda else "bfloat16"},
                       shape=model_shape(model))
    phase = "generation" if stage == "generation" else "train"              # the phase this workload runs (not evaluation's judging)
    parts = {k2: v for k2, v in mem.static.items() if not k2.startswith("weights")} | {f"{phase}: {k2}": v for k2, v in mem.phases[phase].items()}
    return {"model": model, "stage": stage, "device": device, "shape": k, "measured": measured, "predicted": sum(parts.values()),
            "parts": parts, **({"tensors": live.peak, "tensors_at_peak_mb": live.top()} if live else {}),
            "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"), "peak_reset_after_load": reset}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="write the results JSON here (e.g. nbs/plan_results/memory.json)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="cuda when a GPU is present (auto), else cpu")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES)
    ap.add_argument("--mmap-threshold", type=int, metavar="BYTES", help="run the children with MALLOC_MMAP_THRESHOLD_=BYTES (glibc returns freed blocks above it)")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "STAGE"), help=argparse.SUPPRESS)   # the child process
    a = ap.parse_args(argv)
    import torch
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    if a.one: print(json.dumps(one(*a.one, dev))); return
    rows, t0 = [], time.time()
    for model in a.models:
        for stage in a.stages:
            env = {**os.environ, **({"MALLOC_MMAP_THRESHOLD_": str(a.mmap_threshold)} if a.mmap_threshold else {})}
            r = subprocess.run([sys.executable, __file__, "--device", dev, "--one", model, stage], capture_output=True, text=True, cwd=REPO, env=env)
            if r.returncode: raise SystemExit(f"{model} {stage}: {r.stderr[-2000:]}")
            row = json.loads(r.stdout.strip().splitlines()[-1]); row["ratio"] = round(row["predicted"]/max(row["measured"], 1), 3)
            if "tensors" in row: row["ratio_tensors"] = round(row["predicted"]/max(row["tensors"], 1), 3)
            rows.append(row); print(f"{model:<28} {stage:<13} measured {row['measured']/1e6:8.1f} MB  predicted {row['predicted']/1e6:8.1f} MB  ratio {row['ratio']}"
                                    + (f"  tensors {row['tensors']/1e6:8.1f} MB  ratio {row['ratio_tensors']}" if "tensors" in row else ""), flush=True)
    out = {"what": "peak memory increase over the loaded model per stage workload (CPU: peak RSS as 'measured', peak live tensor bytes as 'tensors'; "
                   "CUDA: max_memory_allocated) vs launch.plan.stage_memory", "malloc_mmap_threshold": a.mmap_threshold,
           "device": dev, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "wall_s": round(time.time() - t0, 1),
           "command": recorded_command(__file__, sys.argv[1:]), "off_by_more_than_30pct": [f"{r['model']} {r['stage']}" for r in rows if abs(r["ratio"] - 1) > 0.3],
           "rows": rows}
    if a.out: a.out.parent.mkdir(parents=True, exist_ok=True); a.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
