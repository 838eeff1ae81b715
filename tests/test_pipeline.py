"The whole pipeline end to end on the tiny model, the CLI, resume/skip, and its errors."
import json

import pytest
import torch

from cai_workbench.core.run import Run
from cai_workbench.pipeline import PipelineConfig, load_config, run_pipeline
from cai_workbench.cli import main


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
    # the CLI's end-of-run table carries the evaluation's rates with their intervals, n and a sentence per stage
    assert "refused harmful" in str(res) and "n=" in str(res) and "DPO vs base: " in str(res)
    assert summary["metrics"]["dpo"]["refusal_harmful_ci"] is not None and summary["metrics"]["dpo"]["refusal_harmful_diff_n"] > 0


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


# --- provenance: fingerprints, --force, stale stages, the run lock, one-line CLI errors (issue 13) -------------------
import errno, signal, subprocess, sys, types
from dataclasses import dataclass

from cai_workbench import pipeline as P
from cai_workbench.core.config import ConfigBase
from cai_workbench.core.io import read_json
from cai_workbench.core.guards import NonFiniteError


@dataclass
class FakeConfig(ConfigBase):
    lr: float = 1.0


def _fake_stage(name, reads, writes, calls):
    "A stage that records what it saw (leftover resume state, its inputs) and writes `writes` from lr + inputs."
    def runner(run, cfg, model="tiny", progress=True):
        with run.stage(name) as d:
            leftover = (d/"partial.txt").exists()
            calls.append((name, cfg.lr, leftover))
            (d/"partial.txt").write_text("resume state")
            if cfg.lr > 100: raise NonFiniteError(f"{name}: loss is nan at step 1")
            if cfg.lr < 0: raise OSError(errno.ENOSPC, "No space left on device", str(d/"big.bin"))
            got = "".join((run.path/r/"out.txt").read_text() for r in reads if (run.path/r/"out.txt").exists())
            (d/writes).mkdir(exist_ok=True); (d/writes/"out.txt").write_text(f"{name}:{cfg.lr}<{got}>")
        return types.SimpleNamespace(summary=lambda: {"lr": cfg.lr})      # a `StageResult`
    return runner


@pytest.fixture
def fake_stages(monkeypatch):
    calls = []
    mod = types.ModuleType("fake_stages"); mod.FakeConfig = FakeConfig
    mod.run_a = _fake_stage("critique_revision", [], "data", calls)
    mod.run_b = _fake_stage("sft", ["critique_revision/data"], "adapter", calls)
    mod.run_c = _fake_stage("dpo", ["sft/adapter"], "adapter", calls)
    monkeypatch.setitem(sys.modules, "fake_stages", mod)
    monkeypatch.setattr(P, "STAGES", {
        "critique_revision": P.StageSpec("critique_revision", "fake_stages", "FakeConfig", "run_a"),
        "sft": P.StageSpec("sft", "fake_stages", "FakeConfig", "run_b", ("critique_revision/data",)),
        "dpo": P.StageSpec("dpo", "fake_stages", "FakeConfig", "run_c", ("sft/adapter",))})
    return calls


def _cfg(**kw):
    return PipelineConfig.from_dict({"model": "tiny", "stages": ["critique_revision", "sft", "dpo"], **kw})


def test_force_starts_over_and_downstream_stages_go_stale(tmp_path, fake_stages, capsys):
    calls, rd = fake_stages, tmp_path/"run"
    run_pipeline(_cfg(), run_dir=rd, progress=False)
    assert [c[0] for c in calls] == ["critique_revision", "sft", "dpo"]
    fp = Run(rd).stage_info("dpo")["fingerprint"]
    assert set(fp["inputs"]) == {"sft/adapter"} and fp["config"]
    calls.clear(); run_pipeline(_cfg(), run_dir=rd, progress=False); assert calls == []      # all up to date: skipped
    # --force sft with a new learning rate: from scratch (no leftover resume state), and dpo is now stale
    res = run_pipeline(_cfg(sft={"lr": 2.0}), run_dir=rd, stages=["sft"], force=True, progress=False)
    assert calls == [("sft", 2.0, False)]
    assert (rd/"sft"/"adapter"/"out.txt").read_text() == "sft:2.0<critique_revision:1.0<>>"
    assert res.stale == {"dpo": ["sft/adapter changed"]}
    assert "stale: dpo (sft/adapter changed)" in str(res)
    assert {r["stage"]: r["status"] for r in res.table()}["dpo"] == "stale"
    # refuse mode names the stage and what changed; the default reruns it from scratch
    with pytest.raises(P.StaleStageError, match="stage dpo is stale .sft/adapter changed"):
        run_pipeline(_cfg(sft={"lr": 2.0}, on_stale="refuse"), run_dir=rd, progress=False)
    calls.clear(); res = run_pipeline(_cfg(sft={"lr": 2.0}), run_dir=rd, progress=False)
    assert calls == [("dpo", 1.0, False)] and res.stale == {}
    assert (rd/"dpo"/"adapter"/"out.txt").read_text() == "dpo:1.0<sft:2.0<critique_revision:1.0<>>>"
    # a changed config of a done stage is stale too; a hand-edited input makes its readers stale
    (rd/"critique_revision"/"data"/"out.txt").write_text("edited by hand")
    assert set(P.stale_stages(Run(rd), _cfg(sft={"lr": 2.0}, dpo={"lr": 3.0}))) == {"sft", "dpo"}
    assert P.stale_stages(Run(rd), _cfg(sft={"lr": 2.0}, dpo={"lr": 3.0}))["dpo"] == ["its config (or model/seed) changed"]


def test_interrupted_stage_resumes_only_with_the_same_fingerprint(tmp_path, fake_stages):
    calls, rd = fake_stages, tmp_path/"run"
    with pytest.raises(OSError):
        run_pipeline(_cfg(critique_revision={"lr": -1.0}), run_dir=rd, stages=["critique_revision"], progress=False)
    with pytest.raises(OSError):                  # same config: resumes (sees its resume state)
        run_pipeline(_cfg(critique_revision={"lr": -1.0}), run_dir=rd, stages=["critique_revision"], progress=False)
    assert calls[-1] == ("critique_revision", -1.0, True)
    run_pipeline(_cfg(), run_dir=rd, stages=["critique_revision"], progress=False)   # other config: from scratch
    assert calls[-1] == ("critique_revision", 1.0, False)


def test_failed_forced_rerun_keeps_the_previous_outputs(tmp_path, fake_stages):
    rd = tmp_path/"run"
    run_pipeline(_cfg(), run_dir=rd, progress=False)
    good = (rd/"sft"/"adapter"/"out.txt").read_text()
    with pytest.raises(NonFiniteError):
        run_pipeline(_cfg(sft={"lr": 1e30}), run_dir=rd, stages=["sft"], force=True, progress=False)
    assert (rd/"sft"/"adapter"/"out.txt").read_text() == good                  # previous good adapter kept
    assert sorted(p.name for p in (rd/"sft").iterdir()) == ["adapter", "partial.txt"]  # the old folder, whole
    assert not list(rd.glob(".sft.prev*"))
    info = json.loads((rd/"manifest.json").read_text())["stages"]["sft"]      # strict JSON
    assert info["status"] == "failed" and "NonFiniteError" in info["error"]


def test_cli_expected_failures_are_one_line_exit_2(tmp_path, fake_stages, capsys):
    cfgf = tmp_path/"c.yaml"; cfgf.write_text("model: tiny\nstages: [critique_revision, sft, dpo]\n")
    rd = tmp_path/"run"
    assert main(["run", str(cfgf), "--run-dir", str(rd), "--stages", " , "]) == 2
    err = capsys.readouterr().err; assert "--stages ' , ' names no stage" in err and not (rd/"manifest.json").exists()
    afile = tmp_path/"afile"; afile.write_text("x")
    assert main(["run", str(cfgf), "--run-dir", str(afile), "--stages", "sft"]) == 2
    err = capsys.readouterr().err; assert err.count("\n") == 1 and str(afile) in err and "folder" in err
    cfgf.write_text("model: tiny\nstages: [critique_revision]\ncritique_revision: {lr: -1.0}\n")   # the fake stage's "full disk"
    assert main(["run", str(cfgf), "--run-dir", str(rd)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "big.bin: No space left on device; the disk is full" in err and "Traceback" not in err
    assert Run(rd).stage_info("critique_revision")["status"] == "failed"


def test_second_process_on_a_run_is_refused_naming_the_holder(tmp_path, capsys):
    rd = tmp_path/"run"
    code = ("import time, sys\nfrom cai_workbench.core import Run\nr = Run.create(sys.argv[1])\n"
            "with r.lock():\n    print('held', flush=True); time.sleep(120)")
    p = subprocess.Popen([sys.executable, "-c", code, str(rd)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        assert main(["run", "--preset", "tiny", "--run-dir", str(rd), "--stages", "critique_revision"]) == 2
        err = capsys.readouterr().err
        assert f"another process is working in this run (pid {p.pid} on" in err and "started 20" in err
        assert Run(rd).stage_info("critique_revision") == {}                  # nothing ran
        with pytest.raises(Exception, match="another process"):
            with Run(rd).stage("sft"): pass                                     # a stage called directly is refused too
    finally:
        p.send_signal(signal.SIGKILL); p.wait()
    with Run(rd).stage("x") as d: (d/"ok").write_text("1")                    # a killed holder leaves no stuck lock
    assert Run(rd).is_done("x")


def test_missing_model_path_is_one_line(tmp_path, capsys):
    rd = tmp_path/"run"
    assert main(["run", "--preset", "tiny", "--run-dir", str(rd), "--stages", "critique_revision", "--model", "/no/such/model"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/no/such/model" in err and "Traceback" not in err
    assert Run(rd).stage_info("critique_revision")["status"] == "failed"


def test_forced_ppo_reruns_from_scratch_not_from_the_old_checkpoint(tmp_path):
    "Issue 13: `--stages ppo --force` with a new learning rate used to resume the old checkpoint (adapter byte-identical)."
    from safetensors.torch import load_file
    from cai_workbench.stages.ppo import TOY_TARGETS
    from cai_workbench.feedback.reward_scoring import random_reward_adapter
    rd = tmp_path/"run"
    Run.create(rd, seed=0)
    random_reward_adapter(rd/"reward_model"/"adapter", base="tiny")
    lora = {"r": 4, "alpha": 8, "dropout": 0.0}
    ppo = dict(total_updates=2, batch_size=4, minibatch_size=4, ppo_epochs=1, generation={"max_new_tokens": 4}, save_every=1, limit=8,
               keep_checkpoints=True, learning_rate=1e-3, lora={**lora, "target_modules": TOY_TARGETS}, value_lora=lora)
    cfg = PipelineConfig.from_dict({"model": "tiny", "stages": ["ppo"], "ppo": ppo})
    run_pipeline(cfg, run_dir=rd, progress=False)
    before = load_file(str(rd/"ppo"/"adapter"/"adapter_model.safetensors"))
    cfg2 = PipelineConfig.from_dict({"model": "tiny", "stages": ["ppo"], "ppo": {**ppo, "learning_rate": 5e-3}})
    res = run_pipeline(cfg2, run_dir=rd, force=True, progress=False)
    assert res.results["ppo"].resumed_from == 0 and len(res.results["ppo"].metrics) == 2
    after = load_file(str(rd/"ppo"/"adapter"/"adapter_model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert read_json(rd/"ppo"/"metrics.json")["config"]["learning_rate"] == 5e-3
    assert Run(rd).stage_info("ppo")["fingerprint"] == P.current_fingerprint(Run(rd), "ppo", cfg2)


def test_best_of_n_evaluation_reads_the_reward_model_so_a_new_one_makes_it_stale(tmp_path):
    "Evaluation with `best_of_n` picks answers with the run's reward model: a retrained one must show in its fingerprint."
    rd = Run.create(tmp_path/"run").path; (rd/"reward_model"/"adapter").mkdir(parents=True)
    (rd/"reward_model"/"adapter"/"adapter_model.safetensors").write_bytes(b"v1")
    def fp(**ev):
        cfg = PipelineConfig.from_dict({"model": "tiny", "stages": ["reward_model", "evaluation"], "evaluation": ev})
        return P.current_fingerprint(Run(rd), "evaluation", cfg)
    plain, bon, own = fp(), fp(best_of_n=4), fp(best_of_n=4, reward_model=str(tmp_path/"elsewhere"))
    assert "reward_model/adapter" not in plain["inputs"] and "reward_model/adapter" not in own["inputs"]
    assert "reward_model/adapter" in bon["inputs"]
    (rd/"reward_model"/"adapter"/"adapter_model.safetensors").write_bytes(b"v2 retrained")
    assert P.stale_reasons(bon, fp(best_of_n=4)) == ["reward_model/adapter changed"]
    assert not P.stale_reasons(plain, fp())


# --- progress=False: one switch for every stage (no tqdm bar, trainer bar, notebook table or library bar) -------------
import inspect


def test_every_stage_runner_takes_progress():
    for name, spec in P.STAGES.items():
        p = inspect.signature(spec.load()[1]).parameters.get("progress")
        assert p is not None and p.default is True, f"{spec.module}.{spec.runner} takes no progress: bool = True"


def test_progress_false_reaches_every_stage_and_prints_no_bar(tmp_path, monkeypatch, capfd):
    "Every stage of the tiny preset plus rloo, grpo and probe, under progress=False: each runner gets it, nothing draws a bar."
    import datasets
    from transformers.utils import logging as tf_logging
    cfg, where = load_config("tiny")
    rl = {"limit": 4, "max_steps": 1, "batch_size": 2, "num_generations": 2, "generation": {"max_new_tokens": 4}}
    cfg = PipelineConfig.from_dict({**cfg.to_dict(), "stages": list(P.STAGES), "rloo": rl, "grpo": rl}, where=where)
    seen, real_load = {}, P.StageSpec.load
    def load(self):
        cls, runner = real_load(self)
        def spy(*a, **kw): seen[self.name] = kw.get("progress", "not passed"); return runner(*a, **kw)
        return cls, spy
    monkeypatch.setattr(P.StageSpec, "load", load)
    run_pipeline(cfg, run_dir=tmp_path/"run", where=where, progress=False)
    out, err = capfd.readouterr()
    assert seen == {s: False for s in P.STAGES}
    assert f"[{len(P.STAGES)}/{len(P.STAGES)}] probe: done" in out           # the pipeline's own lines still print
    for mark in ("it/s", "s/it", "%|", "examples/s", "'loss'", "<progress"):
        assert mark not in out + err, (mark, (out + err)[:2000])
    assert tf_logging.is_progress_bar_enabled() and datasets.is_progress_bar_enabled()   # the libraries' switches put back
