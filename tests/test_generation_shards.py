"""Generation shared across processes: under torchrun each rank generates its share of the prompts, every rank
gets all the results, rank 0's records equal a one-process run's (greedy), and a killed run resumes.

This file is also the launcher: `torchrun --standalone --nproc_per_node 2 tests/test_generation_shards.py RUN_DIR [STOP]`
runs the critique-revision stage on the tiny model in every process and records how many prompts each rank
generated (a spy on the engine). With STOP=1, rank 0 dies after its first generated chunk (a killed run)."""
import json, os, subprocess, sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROMPTS = [f"question number {i} about " + "bread and tea " * (i % 4) for i in range(10)]


def _launch(run_dir: Path, processes: int, stop: bool = False):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    args = [__file__, str(run_dir), "1" if stop else "0"]
    cmd = ([sys.executable] + args if processes == 1 else
           [str(Path(sys.executable).parent/"torchrun"), "--standalone", f"--nproc_per_node={processes}"] + args)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _counts(run_dir: Path) -> dict:
    return {int(f.stem[4:]): json.loads(f.read_text()) for f in (run_dir/"ranks").glob("rank*.json")}


def _records(run_dir: Path) -> list:
    return sorted((json.loads(l) for l in (run_dir/"critique_revision"/"records.jsonl").read_text().splitlines()),
                  key=lambda r: r["id"])


@pytest.mark.slow
def test_generation_is_sharded_gathered_and_resumes(tmp_path):
    one = _launch(tmp_path/"one", 1)
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    two = _launch(tmp_path/"two", 2)
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    assert _records(tmp_path/"two") == _records(tmp_path/"one")               # gathered = one process (greedy)
    c1, c2 = _counts(tmp_path/"one"), _counts(tmp_path/"two")
    total = c1[0]["generated"]
    assert total == 3 * len(PROMPTS) > 0                                      # initial + critique + revision
    assert sorted(c2) == [0, 1] and c2[0]["generated"] + c2[1]["generated"] == total
    assert abs(c2[0]["generated"] - c2[1]["generated"]) <= 3                  # about half each
    assert c2[0]["results"] == c2[1]["results"] == c1[0]["results"]           # every rank got every result

    # killed after rank 0's first chunk, then rerun: resumes from rank 0's store, and ends as the one-process run
    dead = _launch(tmp_path/"kill", 2, stop=True)
    assert dead.returncode != 0
    again = _launch(tmp_path/"kill", 2)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    c3 = _counts(tmp_path/"kill")
    assert 0 < c3[0]["generated"] + c3[1]["generated"] < total                # the stored chunk was not generated again
    assert _records(tmp_path/"kill") == _records(tmp_path/"one")


def _worker(run_dir: str, stop: bool):
    from cai_workbench.core.run import Run
    from cai_workbench.stages.critique_revision import CritiqueRevisionConfig, run_critique_revision
    from cai_workbench.engine.generator import GenerationConfig
    from cai_workbench.engine.embedded import tiny_model
    from cai_workbench.engine.backends import HFBackend
    rank = int(os.environ.get("RANK", 0))
    counts = {"rank": rank, "generated": 0, "results": []}
    orig = HFBackend.run
    def spy(self, prompts, cfg, seed):
        for k, chunk in enumerate(orig(self, prompts, cfg, seed)):
            counts["generated"] += len(chunk[0])
            yield chunk
            if stop and rank == 0: os._exit(3)                               # killed once its first chunk is stored
    HFBackend.run = spy
    m, tok = tiny_model(init_std=0.2)
    cfg = CritiqueRevisionConfig(rounds=1, generation=GenerationConfig(max_new_tokens=6, batch_size=2), max_few_shot=0,
                         converged_pattern="")
    run = Run.create(run_dir)                                                # rank 0 creates (or reopens); the others wait
    res = run_critique_revision(run, cfg, model=(m, tok), prompts=PROMPTS, progress=False)
    counts["results"] = sorted((r["id"], r["final_response"]) for r in res.records)
    out = Path(run_dir)/"ranks"; out.mkdir(exist_ok=True)
    (out/f"rank{rank}.json").write_text(json.dumps(counts))


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2] == "1")
