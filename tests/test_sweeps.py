"Sweeps: variants share identical stages (computed once, reused), and compare_runs reads them back."
import yaml

from cai_workbench.core.run import Run
from cai_workbench.launch.sweeps import compare_runs, run_sweep


def test_sweep_computes_a_shared_stage_once(tmp_path, monkeypatch):
    cfg = {"name": "sw", "model": "tiny", "stages": ["critique_revision"],
           "critique_revision": {"prompts": "demo", "limit": 2, "rounds": 1, "generation": {"max_new_tokens": 4, "batch_size": 2}},
           "sweep": {"sft.learning_rate": [1e-4, 2e-4], "seed": [0, 1]}}
    p = tmp_path/"sweep.yaml"; p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    import cai_workbench.stages.critique_revision as C
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


def test_compare_page_from_the_command_line(tmp_path, capsys):
    from cai_workbench.core.io import write_json
    from cai_workbench.cli import main
    def run(name, beta, refused):
        r = Run.create(tmp_path/name, config={"name": name, "dpo": {"beta": beta}, "evaluation": {"system_prompt": "<b>be safe</b>"}})
        write_json(r.stage_dir("evaluation")/"summary.json", {"stages": ["dpo"], "metrics": {"dpo": {
            "n_harmful": 20, "n_benign": 10, "refusal_harmful": refused, "over_refusal_benign": 0.1, "win_rate_vs_base": 0.55}}})
        return str(r.path)
    out = tmp_path/"compare.html"
    assert main(["compare", run("a", 0.1, 0.5), run("b", "<script>x</script>", 0.75), "--html", str(out)]) == 0
    page = out.read_text()
    assert "<script>x" not in page and "&lt;script&gt;x&lt;/script&gt;" in page       # config values are escaped
    assert "75% [" in page and "n=20" in page and "90% [" in page and "n=10" in page   # harmless / helpful with intervals and n
    assert page.count("data:image/png;base64,") == 1 and '<section id="config">' in page and "dpo.beta" in page
    assert f"page: {out}" in capsys.readouterr().out
