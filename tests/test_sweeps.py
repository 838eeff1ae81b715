"Sweeps: variants share identical stages (computed once, reused), and compare_runs reads them back."
import yaml

from cai_workbench.core import Run
from cai_workbench.sweeps import compare_runs, run_sweep


def test_sweep_computes_a_shared_stage_once(tmp_path, monkeypatch):
    cfg = {"name": "sw", "model": "tiny", "stages": ["critique_revision"],
           "critique_revision": {"prompts": "demo", "limit": 2, "rounds": 1, "generation": {"max_new_tokens": 4, "batch_size": 2}},
           "sweep": {"sft.learning_rate": [1e-4, 2e-4], "seed": [0, 1]}}
    p = tmp_path/"sweep.yaml"; p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    import cai_workbench.critique as C
    calls = []
    real = C.run_critique_revision
    def counted(*a, **kw): calls.append(1); return real(*a, **kw)
    monkeypatch.setattr(C, "run_critique_revision", counted)
    res = run_sweep(p, runs_dir=tmp_path/"runs", progress=False)
    names = [r.name for r in res.runs]
    assert names == ["sw-learning_rate=0.0001-seed=0", "sw-learning_rate=0.0001-seed=1", "sw-learning_rate=0.0002-seed=0", "sw-learning_rate=0.0002-seed=1"]
    assert len(calls) == 2                                              # once per seed; the learning rate of an unrun stage changes nothing
    assert res.reused == {names[2]: ["critique_revision"], names[3]: ["critique_revision"]}
    assert Run(res.runs[2]).stage_info("critique_revision")["reused_from"] == str(res.runs[0])
    assert (res.runs[2]/"critique_revision"/"records.jsonl").read_text() == (res.runs[0]/"critique_revision"/"records.jsonl").read_text()
    cmp = compare_runs(res.runs)
    assert cmp.keys == ["seed", "sft.learning_rate"] and len(cmp.rows) == 4 and cmp.rows[0]["stage"] == "(not evaluated)"
