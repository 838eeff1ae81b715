"Estimate: measured throughput from a smaller run scales to the full config; unmeasured device classes say unknown; the CLI prints it."
import pytest

from cai_workbench.core import ConfigError, Run
from cai_workbench.estimate import estimate, price_table
from cai_workbench.pipeline import load_config, main


def _reference(tmp_path):
    cfg, _ = load_config("demo")
    small = cfg.replace(stages=["sft", "dpo"])
    run = Run.create(tmp_path/"small", config=small)
    m = run.manifest
    m["stages"] = {"sft": {"status": "done", "wall_s": 60.0}, "dpo": {"status": "done", "wall_s": 40.0}}
    run.update_manifest(stages=m["stages"])
    return small, run.path


def test_measured_rate_scales_with_the_work(tmp_path):
    small, ref = _reference(tmp_path)
    big = small.replace(sft={**small.sft, "max_steps": 60}, dpo={**small.dpo, "max_steps": 4})
    e = estimate(big, "ml.g5.2xlarge", reference=ref)
    rows = {r["stage"]: r for r in e.rows}
    assert rows["sft"]["wall_s"] == pytest.approx(600.0) and rows["dpo"]["wall_s"] == pytest.approx(40.0)   # 10x the steps, 10x the time
    price = price_table()["instances"]["ml.g5.2xlarge"]["usd_per_hour"]
    assert e.usd == pytest.approx(640/3600*price)
    assert all(r["rate"].startswith("measured: run") for r in e.rows)


def test_unmeasured_class_is_unknown_not_guessed(tmp_path, capsys):
    e = estimate(load_config("demo")[0].replace(stages=["sft"]), "ml.p4d.24xlarge")
    assert e.rows[0]["wall_s"] is None and e.usd is None and "unknown" in e.rows[0]["rate"]
    with pytest.raises(ConfigError, match="ml.nope"): estimate("demo", "ml.nope")
    assert main(["estimate", "demo", "--instance", "ml.g5.2xlarge", "--price", "2.0"]) == 0
    out = capsys.readouterr().out
    assert "ml.g5.2xlarge at $2.0/h" in out and "sft" in out
