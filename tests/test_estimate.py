"Estimate: measured throughput from a smaller run scales to the full config; unmeasured device classes say unknown; the CLI prints it."
import pytest

from cai_workbench.core.config import ConfigError
from cai_workbench.core.run import Run
from cai_workbench.launch.estimate import estimate, price_table
from cai_workbench.pipeline import load_config
from cai_workbench.cli import main


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
    big = small.replace(sft={**small.sft, "max_steps": 10*small.sft["max_steps"]})
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


def test_a_stage_that_generates_and_trains_nothing_costs_no_time(capsys):
    "The probe stage only reads the evaluation's answers: 0 tokens, 0 s, and presets that end with it (demo, probe) estimate."
    e = estimate("probe", "ml.g5.2xlarge")
    row = {r["stage"]: r for r in e.rows}["probe"]
    assert (row["tokens"], row["wall_s"], row["usd"]) == (0, 0.0, 0.0) and row["rate"] == "none needed: no tokens"
    assert main(["estimate", "demo"]) == 0 and "probe" in capsys.readouterr().out


def test_load_rescales_a_rate_measured_under_another_load(tmp_path):
    from cai_workbench.launch.estimate import rates_from_run
    small, ref = _reference(tmp_path)
    run = Run(ref); m = run.manifest
    m["stages"]["sft"].update(load_start=8.0, load_avg=[8.0, 8.0, 8.0])          # 60 s at load 8 on 2 cores: ~15 s alone
    m["stages"]["reward_model"] = {"status": "done", "wall_s": 5.0, "reused_from": "/elsewhere"}
    run.update_manifest(stages=m["stages"], environment={**m["environment"], "device": {"kind": "cpu", "name": "cpu (2 cores, native bf16)"}})
    rates = rates_from_run(ref)
    assert (rates["sft"]["load"], rates["sft"]["cores"], rates["dpo"]["load"]) == (8.0, 2, None)
    assert "reward_model" not in rates                                            # copied from another run: no time measured here
    assert rates["sft"]["s_per_token_alone"] == pytest.approx(rates["sft"]["s_per_token"]/4)
    quiet = {r["stage"]: r["wall_s"] for r in estimate(small, reference=ref, load=1.0).rows}
    asis = {r["stage"]: r["wall_s"] for r in estimate(small, reference=rates).rows}
    assert quiet["sft"] == pytest.approx(15.0) and asis["sft"] == pytest.approx(60.0)
    assert quiet["dpo"] == asis["dpo"] == pytest.approx(40.0)                     # no load recorded: used as measured
    assert any("rescaled to load average 1.0" in n for n in estimate(small, reference=ref, load=1.0).notes)
    with run.stage("evaluation"): pass                                            # every stage now records the load it met
    info = run.stage_info("evaluation")
    assert isinstance(info["load_start"], float) and len(info["load_avg"]) == 3 and info["cpu_s"] >= 0


def test_two_runs_of_different_size_fit_a_fixed_cost_and_a_cost_per_token(tmp_path, capsys):
    "One run puts the fixed cost into every token (100 s for 12 steps); two give fixed + per step (80 s)."
    cfg = load_config("demo")[0].replace(stages=["sft"])
    refs = []
    for steps, wall in ((2, 30.0), (6, 50.0)):                                 # 20 s fixed + 5 s per step
        run = Run.create(tmp_path/f"s{steps}", config=cfg.replace(sft={**cfg.sft, "max_steps": steps}))
        run.update_manifest(stages={"sft": {"status": "done", "wall_s": wall}}); refs.append(run.path)
    big = cfg.replace(sft={**cfg.sft, "max_steps": 12})
    one, two = estimate(big, reference=refs[1]), estimate(big, reference=refs)
    assert one.rows[0]["wall_s"] == pytest.approx(100.0) and two.rows[0]["wall_s"] == pytest.approx(80.0)
    assert two.rows[0]["rate"].startswith("fitted: 20.0 s + ") and any("fixed + per-token" in n for n in two.notes)
    assert any("assumed: no fixed cost" in n for n in one.notes)
    assert main(["estimate", "demo", "--reference", str(refs[0]), str(refs[1])]) == 0
    assert "fitted: 20.0 s" in capsys.readouterr().out
