"""PPO's value model, side by side: a value head on the policy trunk (`value_model="shared"`) vs one on its own LoRA
adapter (`value_model="adapter"`), learning the toy reward of `06b_ppo_runner` (`toy_config`, `word_count_reward("e")`)
on the tiny model, for a few seeds.

    .venv/bin/python bench/ppo_value.py [--seeds 0,1] [--updates 20] [--threads 1]

Writes bench/results/ppo_value.json (shown in `06_ppo` by `views.bench_table("ppo_value")`): per run the final mean
reward, the final KL to the reference (nats), the mean explained variance of the value predictions over the updates,
and the CPU seconds of the run (process time, so other jobs on the machine slow it less than wall time).
"""
import argparse, os, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--updates", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    a = ap.parse_args(argv)
    import torch
    from cai_workbench.core.run import Run
    from cai_workbench.stages.ppo import run_ppo, toy_config, word_count_reward
    if a.threads: torch.set_num_threads(a.threads)
    prompts = [f"Tell me about item {i}." for i in range(32)]      # the toy prompts of 06b_ppo_runner
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for vm in ("shared", "adapter"):
            for seed in (int(s) for s in a.seeds.split(",")):
                run = Run.create(Path(tmp)/f"{vm}-{seed}", seed=seed)
                t0 = time.process_time()
                res = run_ppo(run, toy_config(total_updates=a.updates, value_model=vm), model="tiny",
                              reward_fn=word_count_reward("e"), prompts=prompts, progress=False)
                cpu = time.process_time() - t0
                s, ev = res.summary(), [m["explained_var"] for m in res.metrics if m.get("explained_var") is not None]
                rows.append({"value_model": vm, "seed": seed, "updates": len(res.metrics), "first reward": s["first_reward"],
                             "final reward": s["final_reward"], "final KL": s["final_kl"],
                             "mean explained variance": round(sum(ev)/len(ev), 3) if ev else None, "CPU s": round(cpu, 1)})
                print(rows[-1], flush=True)
    mean = lambda vm, k: round(sum(r[k] for r in rows if r["value_model"] == vm)/sum(r["value_model"] == vm for r in rows), 3)
    write_results("ppo_value", rows, summary={f"{vm} mean final reward": mean(vm, "final reward") for vm in ("shared", "adapter")}
                  | {f"{vm} mean final KL": mean(vm, "final KL") for vm in ("shared", "adapter")} | {"model": "tiny", "threads": a.threads},
                  notes=f"toy_config(total_updates={a.updates}), word_count_reward('e'), 32 toy prompts; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
