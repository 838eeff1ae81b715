"The whole pipeline end to end on the tiny model, the CLI, resume/skip, and its errors."
import json

import pytest

from cai_workbench.core import Run
from cai_workbench.pipeline import PipelineConfig, load_config, main, run_pipeline


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    cfg, where = load_config("tiny")
    run_dir = tmp_path_factory.mktemp("pipe")/"tiny"
    res = run_pipeline(cfg, run_dir=run_dir, where=where, progress=False)
    return cfg, res


def test_every_stage_runs_and_writes_its_outputs(tiny_run):
    cfg, res = tiny_run
    run = res.run
    m = run.manifest
    assert [s for s in m["stages"]] == cfg.stages
    for stage in cfg.stages:
        info = m["stages"][stage]
        assert info["status"] == "done", (stage, info)
        assert info["wall_s"] >= 0 and isinstance(info["summary"], dict)
    for f in ["critique_revision/records.jsonl", "sft/adapter/adapter_config.json", "preferences/pairs.jsonl",
              "reward_model/adapter/adapter_config.json", "ppo/metrics.jsonl", "dpo/adapter/adapter_config.json",
              "evaluation/summary.json", "evaluation/report.html"]:
        assert (run.path/f).exists(), f
    summary = json.loads((run.path/"evaluation"/"summary.json").read_text())
    assert "base" in json.dumps(summary) and "dpo" in json.dumps(summary)
    assert res.report_path() == run.path/"evaluation"/"report.html"
    assert "report:" in str(res)


def test_rerun_skips_finished_stages(tiny_run, capsys):
    cfg, res = tiny_run
    walls = {k: v["wall_s"] for k, v in res.run.manifest["stages"].items()}
    again = run_pipeline(cfg, run_dir=res.run.path, progress=False)
    assert all(v is None for v in again.results.values())
    assert "done already" in capsys.readouterr().out
    assert {k: v["wall_s"] for k, v in again.run.manifest["stages"].items()} == walls


def test_missing_inputs_and_bad_config_fail_clearly(tmp_path, capsys):
    cfg = PipelineConfig(model="tiny", device="cpu")
    with pytest.raises(Exception, match="run the preferences stage first|preferences"):
        run_pipeline(cfg, run_dir=tmp_path/"r", stages=["reward_model"], progress=False)
    bad = tmp_path/"bad.yaml"
    bad.write_text("model: tiny\nstages: [sft, rlhf]\n")
    assert main(["run", str(bad)]) == 2
    assert "unknown stage(s) ['rlhf']" in capsys.readouterr().err
    bad.write_text("model: tiny\nppo: {learning_rat: 1}\n")
    assert main(["run", str(bad), "--stages", "ppo"]) == 2
    assert "bad.yaml.ppo: unknown field(s) ['learning_rat']" in capsys.readouterr().err
    assert main(["run", str(bad), "--stages", "nope"]) == 2
