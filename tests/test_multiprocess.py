"""The SFT stage runs unchanged under torchrun: two CPU processes (gloo) train to the same losses and the same
adapter as one process on the same global batch, and only rank 0 writes into the run folder.

This file is also the launcher: `torchrun --standalone --nproc_per_node 2 tests/test_multiprocess.py RUN_DIR BATCH`
runs `cai_workbench.stages.sft.run_sft` in every process and records which processes started."""
import json, os, shutil, subprocess, sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GLOBAL_BATCH, STEPS = 4, 4


def _sft_rows(n: int) -> str:
    "Revisions in the critique_revision/sft.jsonl format, of varied lengths (so token-weighted averaging matters)."
    return "\n".join(json.dumps({
        "prompt": [{"role": "user", "content": f"question {i} " + "about this " * (i % 5) + "?"}],
        "completion": [{"role": "assistant", "content": f"answer {i} " + "carefully " * (1 + i % 7)}]}) for i in range(n)) + "\n"


def _launch(run_dir: Path, processes: int):
    from cai_workbench.core.run import Run
    run = Run.create(run_dir)
    (run.path/"critique_revision").mkdir()
    (run.path/"critique_revision"/"sft.jsonl").write_text(_sft_rows(GLOBAL_BATCH * STEPS))
    per_device = GLOBAL_BATCH // processes
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "CUDA_VISIBLE_DEVICES": ""}
    if processes == 1: cmd = [sys.executable, __file__, str(run_dir), str(per_device)]
    else: cmd = [str(Path(sys.executable).parent/"torchrun"), "--standalone", f"--nproc_per_node={processes}",
                 __file__, str(run_dir), str(per_device)]
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    ranks = sorted(json.loads(f.read_text())["rank"] for f in (run_dir/"ranks").glob("rank*.json"))
    return run, ranks, [json.loads(f.read_text()) for f in sorted((run_dir/"ranks").glob("rank*.json"))]


@pytest.mark.slow
def test_sft_under_torchrun_matches_one_process(tmp_path):
    from safetensors.torch import load_file
    import torch
    one, ranks1, info1 = _launch(tmp_path/"one", 1)
    two, ranks2, info2 = _launch(tmp_path/"two", 2)
    assert ranks1 == [0] and ranks2 == [0, 1]                                  # two processes really ran
    assert all(i["world_size"] == 2 and i["distributed"] and i["backend"] == "gloo" for i in info2)
    assert len({i["pid"] for i in info2}) == 2
    m1 = json.loads((one.path/"sft"/"metrics.json").read_text())
    m2 = json.loads((two.path/"sft"/"metrics.json").read_text())
    assert m1["steps"] == m2["steps"] == STEPS and m1["config"]["batch_size"] == 4 and m2["config"]["batch_size"] == 2
    l1, l2 = [l for _, l in m1["losses"]], [l for _, l in m2["losses"]]
    assert len(set(round(l, 3) for l in l1)) > 1                               # per-batch losses, not a constant
    assert l1 == pytest.approx(l2, abs=1e-4), (l1, l2)
    w1 = load_file(one.path/"sft"/"adapter"/"adapter_model.safetensors")
    w2 = load_file(two.path/"sft"/"adapter"/"adapter_model.safetensors")
    assert w1.keys() == w2.keys() and any(k for k in w1 if "lora_B" in k)
    assert any(w1[k].abs().sum() > 0 for k in w1 if "lora_B" in k)            # training moved the zero-initialised B
    for k in w1: torch.testing.assert_close(w1[k], w2[k], atol=1e-5, rtol=1e-4)
    # only rank 0 wrote run files (manifest, metrics, adapter); rank 1 wrote into its scratch folder only
    writes = {i["rank"]: i["writes"] for i in info2}
    assert writes[1] == [] and {"manifest.json", "sft/metrics.json", "sft/adapter"} <= set(writes[0]), writes
    manifest = json.loads((two.path/"manifest.json").read_text())
    assert manifest["stages"]["sft"]["status"] == "done"
    assert sorted(p.name for p in (two.path/"sft").iterdir()) == ["adapter", "loss.png", "metrics.json"]


def _worker(run_dir: str, per_device_batch: int):
    "One process of the launch: run the project's SFT stage as is, then record who we were."
    from cai_workbench.core.run import Run
    from cai_workbench.engine.models import LoraSpec
    from cai_workbench.stages.sft import SFTConfig, run_sft
    import torch.distributed as dist
    import cai_workbench.core.io as io, cai_workbench.core.run as run_mod, cai_workbench.stages.sft as sft
    writes = []                                 # run files this process wrote (relative paths)
    def log(path):
        p = Path(path).resolve()
        if p.is_relative_to(Path(run_dir).resolve()): writes.append(str(p.relative_to(Path(run_dir).resolve())))
    def spy(module, name, path_arg):
        orig = getattr(module, name)
        def wrapper(*a, **k): log(a[path_arg]); return orig(*a, **k)
        setattr(module, name, wrapper)
    spy(io, "write_json", 0); spy(run_mod, "write_json", 0); spy(sft, "write_json", 0); spy(sft, "save_adapter", 1)
    cfg = SFTConfig(max_steps=STEPS, batch_size=per_device_batch, learning_rate=5e-3, max_length=64,
                         lora=LoraSpec(r=4, alpha=8, dropout=0.0), device="cpu", seed=0)
    run_sft(Run(run_dir), cfg, model="tiny", progress=False)
    rank = int(os.environ.get("RANK", 0))
    info = {"rank": rank, "world_size": int(os.environ.get("WORLD_SIZE", 1)), "pid": os.getpid(),
            "distributed": dist.is_available() and dist.is_initialized(),
            "backend": dist.get_backend() if dist.is_available() and dist.is_initialized() else None, "writes": sorted(set(writes))}
    out = Path(run_dir)/"ranks"; out.mkdir(exist_ok=True)
    (out/f"rank{rank}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]))
