"Issue 32 §5-6: silent wrong results (unhashed prompt sources, a done stage's broken adapter) and errors that must be one line."
import errno, json, math, sys, types
from dataclasses import dataclass
from pathlib import Path

import pytest

from cai_workbench import pipeline as P
from cai_workbench.cli import main
from cai_workbench.core.config import ConfigBase, ConfigError
from cai_workbench.core.run import Run
from cai_workbench.pipeline import PipelineConfig, run_pipeline


@dataclass
class SourcesConfig(ConfigBase):
    prompts: str = "demo"
    constitution: str = "harmless"
    extra: list = None


@pytest.fixture
def reader_stage(monkeypatch):
    "One fake stage whose section names prompt sources and a constitution; it records each run."
    calls = []
    def runner(run, cfg, model="tiny", progress=True):
        with run.stage("critique_revision") as d: (d/"out.txt").write_text(cfg.prompts); calls.append(cfg.prompts)
        return types.SimpleNamespace(summary=lambda: {})
    mod = types.ModuleType("fake_reader"); mod.SourcesConfig, mod.run = SourcesConfig, runner
    monkeypatch.setitem(sys.modules, "fake_reader", mod)
    monkeypatch.setattr(P, "STAGES", {"critique_revision": P.StageSpec("critique_revision", "fake_reader", "SourcesConfig", "run")})
    return calls


def _spec_files(t: Path):
    (t/"ds").mkdir(); (t/"cons").mkdir()
    for f in ("a.txt", "b.txt", "f.txt", "f.jsonl", "f.csv", "h.jsonl", "ds/data.arrow", "cons/critiques.json"): (t/f).write_text("v1\n")
    return {"{t}/a.txt+{t}/b.txt": "b.txt", "{t}/f.txt[3]": "f.txt", "{t}/f.jsonl@heldout": "f.jsonl", "{t}/f.csv?": "f.csv",
            "hh-rlhf:{t}/h.jsonl": "h.jsonl", "hf:{t}/ds": "ds/data.arrow", "red-team+{t}/f.txt[2]?@train": "f.txt"}


def test_editing_any_file_a_prompt_spec_or_constitution_folder_reads_makes_the_stage_stale(tmp_path, reader_stage):
    "`a+b`, `f[3]`, `f@heldout`, `f?`, `hh-rlhf:<path>`, `hf:<dir>` and a constitution folder are fingerprinted: editing one reruns."
    calls = reader_stage
    for n, (spec, edited) in enumerate(_spec_files(tmp_path).items()):
        spec = spec.format(t=tmp_path)
        cfg = PipelineConfig.from_dict({"model": "tiny", "stages": ["critique_revision"],
                                        "critique_revision": {"prompts": spec, "constitution": str(tmp_path/"cons")}})
        rd = tmp_path/f"run{n}"
        run_pipeline(cfg, run_dir=rd, progress=False); calls.clear()
        run_pipeline(cfg, run_dir=rd, progress=False); assert calls == [], spec          # unchanged: skipped
        f = tmp_path/edited; f.write_text(f.read_text() + "edited\n")
        assert "critique_revision" in P.stale_stages(Run(rd), cfg), spec
        run_pipeline(cfg, run_dir=rd, progress=False); assert calls == [spec], spec       # rerun
    (tmp_path/"cons"/"critiques.json").write_text("edited")                               # the constitution folder too
    why = P.stale_stages(Run(rd), cfg)["critique_revision"]
    assert why == [f"file:{tmp_path/'cons'} changed"]


# --- a done stage whose adapter is broken is an error, not an absence -------------------------------------------------
def _broken_sft(path) -> Run:
    "A run whose manifest says sft is done but whose sft/adapter has lost adapter_config.json."
    run = Run.create(path)
    with run.stage("sft") as d:
        (d/"adapter").mkdir(); (d/"adapter"/"adapter_model.safetensors").write_bytes(b"x"); (d/"adapter"/"adapter_config.json").write_text("{}")
    (d/"adapter"/"adapter_config.json").unlink()
    return run


EVAL_YAML = "model: tiny\nevaluation: {prompts: [demo], limit: 2, allow_train_overlap: true}\n"


def test_done_stage_with_a_broken_adapter_is_an_error_in_every_stage_that_reads_it(tmp_path):
    from cai_workbench.core.run import MissingStageError
    from cai_workbench.stages.evaluation import discover_stages
    from cai_workbench.stages.sft import sft_adapter, stage_adapter
    run = _broken_sft(tmp_path/"r")
    want = r"sft/adapter/adapter_config.json: missing, but .*manifest.json says stage sft is done.*--force --stages sft"
    for stage in ("dpo", "ppo", "rloo", "grpo", "preferences"):                  # every start_from: sft reader
        with pytest.raises(MissingStageError, match=want): sft_adapter(run, "sft", None, stage)
    with pytest.raises(MissingStageError, match=want): discover_stages(run)     # evaluation
    assert sft_adapter(run, "base", None, "dpo") is None                          # start_from: base does not read it
    (run.path/"sft"/"adapter"/"adapter_config.json").write_text("{}"); (run.path/"sft"/"adapter"/"adapter_model.safetensors").unlink()
    with pytest.raises(MissingStageError, match="adapter_model.safetensors: missing"): stage_adapter(run, "sft")
    assert stage_adapter(run, "dpo") is None and list(discover_stages(Run.create(tmp_path/"fresh"))) == ["base"]   # never run: absent


def test_cli_evaluation_on_a_broken_sft_adapter_is_one_line_exit_2(tmp_path, capsys):
    run = _broken_sft(tmp_path/"r")
    cfgf = tmp_path/"c.yaml"; cfgf.write_text(EVAL_YAML)
    assert main(["run", str(cfgf), "--run-dir", str(run.path), "--stages", "evaluation"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sft/adapter/adapter_config.json: missing" in err and "--force --stages sft" in err
    assert not (run.path/"evaluation"/"metrics.json").exists()


# --- corrupt files: one line naming the file --------------------------------------------------------------------------
def _good_safetensors(path):
    import torch
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(8, 8)}, str(path)); return path


def test_truncated_adapter_is_one_line_naming_the_file(tmp_path, capsys):
    run = _broken_sft(tmp_path/"r")
    ad = run.path/"sft"/"adapter"
    (ad/"adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "tiny"}))
    w = _good_safetensors(ad/"adapter_model.safetensors"); w.write_bytes(w.read_bytes()[:-100])       # a copy cut short
    cfgf = tmp_path/"c.yaml"; cfgf.write_text(EVAL_YAML)
    assert main(["run", str(cfgf), "--run-dir", str(run.path), "--stages", "evaluation"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "adapter_model.safetensors" in err and "corrupt or truncated" in err and "--force --stages sft" in err
    from cai_workbench.engine.backends import load_adapters
    with pytest.raises(ValueError, match="adapter_model.safetensors: .*corrupt or truncated"): load_adapters(object(), {"sft": ad})


def test_ppo_checkpoint_state_and_tensors_errors_name_the_file(tmp_path):
    from cai_workbench.stages.ppo import load_checkpoint
    ck = tmp_path/"checkpoints"/"checkpoint-2"; ck.mkdir(parents=True)
    (ck/"state.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"checkpoint-2/state.json: not a PPO checkpoint state \(no 'update'\); delete"):
        load_checkpoint(ck, None, None, None, None)
    (ck/"state.json").write_text(json.dumps({k: {} for k in ("config", "adapters", "optimizer", "kl_ctl", "rng")} | {"update": 2}))
    w = _good_safetensors(ck/"tensors.safetensors"); w.write_bytes(w.read_bytes()[:40])
    with pytest.raises(ValueError, match=r"tensors.safetensors: .*corrupt or truncated; delete .*checkpoint-2"):
        load_checkpoint(ck, None, None, None, None)


def test_trl_checkpoint_with_corrupt_state_or_a_pickle_is_refused_in_one_line(tmp_path):
    import pickle, random, numpy as np, torch
    from cai_workbench.core.checkpoints import _check_resumable
    ck = tmp_path/"checkpoint-4"; ck.mkdir()
    (ck/"trainer_state.json").write_text('{"global_step": 4, ')                                          # cut short
    with pytest.raises(ConfigError, match=r"checkpoint-4/trainer_state.json: not valid JSON.*; delete .*checkpoint-4"): _check_resumable(ck)
    (ck/"trainer_state.json").write_text('{"global_step": 4}')
    torch.save({"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]}, ck/"optimizer.pt")          # what transformers writes
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.get_rng_state()}, ck/"rng_state.pth")
    _check_resumable(ck)                                                                                  # a real checkpoint passes
    (ck/"scheduler.pt").write_bytes(pickle.dumps(types.SimpleNamespace(x=1)))                             # planted pickle
    with pytest.raises(ConfigError, match=r"scheduler.pt: holds pickled objects.*unpickling can run code") as e: _check_resumable(ck)
    assert "\n" not in str(e.value)


# --- user text in figures is literal ----------------------------------------------------------------------------------
def test_dollar_signs_in_user_text_do_not_break_the_figures(tmp_path):
    from cai_workbench.ui.report import fig_to_base64, plot_elo, plot_hazards, plot_helpful_harmless, plot_principles
    from cai_workbench.stages.sft import plot_loss
    from cai_workbench.stages.reward_model import plot_calibration
    bad = r"costs $\frac{$ or 5"                                                   # unbalanced mathtext: a ParseException
    m = {"over_refusal_benign": 0.1, "n_benign": 3, "refusal_harmful": 0.5, "n_harmful": 4, "elo": 1000.0,
         "principles": {bad: {"score": 0.5}}}
    summary = {"stages": ["base", bad], "metrics": {"base": m, bad: m}, "hazards": {bad: {"base": 0.5, bad: 1.0}}}
    for plot in (plot_helpful_harmless, plot_hazards, plot_principles, plot_elo): assert fig_to_base64(plot(summary))
    assert plot_loss([(1, 2.0), (2, 1.0)], tmp_path/"loss.png", title=bad).exists()
    ev = {"calibration": [{"pred": 0.5, "obs": 0.5}], "n": 2, "ece": 0.0}
    assert plot_calibration({bad: ev}, tmp_path/"cal.png").exists()


# --- config checks: before any model loads, one line naming the field -------------------------------------------------
def _cli(tmp_path, capsys, yaml_text, stages="critique_revision"):
    cfgf = tmp_path/"c.yaml"; cfgf.write_text(yaml_text)
    code = main(["run", str(cfgf), "--run-dir", str(tmp_path/"run")] + (["--stages", stages] if stages else []))
    return code, capsys.readouterr().err


def test_unknown_backend_nan_and_inf_fail_the_config_check(tmp_path, capsys):
    for section, field in [("critique_revision: {generation: {backend: vllm-typo}}", "backend='vllm-typo'"),
                           ("sft: {learning_rate: .nan}", "learning_rate: nan is not a finite number"),
                           ("dpo: {beta: .inf}", "beta: inf is not a finite number"),
                           ("critique_revision: {generation: {temperature: -.inf}}", "temperature: -inf is not a finite number"),
                           ("sft: {learning_rate: '1e-5'}", "write it unquoted, with a dot: 1.0e-05")]:
        code, err = _cli(tmp_path, capsys, f"model: tiny\n{section}\n", stages=None)
        assert code == 2 and err.count("\n") == 1 and field in err and "Traceback" not in err, (section, err)
        assert not (tmp_path/"run"/"critique_revision").exists()


def test_1e_5_in_yaml_is_a_float(tmp_path):
    f = tmp_path/"c.yaml"; f.write_text("model: tiny\nsft: {learning_rate: 1e-5, max_steps: 10}\ndpo: {beta: 5E-2}\n")
    cfg, _ = P.load_config(str(f))
    assert cfg.stage_config("sft").learning_rate == 1e-5 and cfg.stage_config("dpo").beta == 0.05
    assert cfg.stage_config("sft").max_steps == 10


# --- a full disk names the folder -------------------------------------------------------------------------------------
def test_full_disk_without_a_file_name_names_the_folder(tmp_path, reader_stage, capsys, monkeypatch):
    import os
    from cai_workbench.core.io import RecordStore, atomic_write_text
    real = os.fsync
    def full(fd): raise OSError(errno.ENOSPC, "No space left on device")     # as a write() on a full disk: no file name
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as e: atomic_write_text(tmp_path/"d"/"x.json", "{}")
    assert e.value.filename == str(tmp_path/"d"/"x.json") and not list((tmp_path/"d").iterdir())
    with pytest.raises(OSError) as e: RecordStore(tmp_path/"s.jsonl").append({"id": 1})
    assert e.value.filename == str(tmp_path/"s.jsonl")
    monkeypatch.setattr(os, "fsync", real)
    mod = sys.modules["fake_reader"]; inner = mod.run
    def runner(run, cfg, model="tiny", progress=True):
        with run.stage("critique_revision"): raise OSError(errno.ENOSPC, "No space left on device")
    mod.run = runner
    code, err = _cli(tmp_path, capsys, "model: tiny\nstages: [critique_revision]\n")
    assert code == 2 and err.count("\n") == 1 and f"{tmp_path/'run'/'critique_revision'}: No space left on device; the disk is full" in err
