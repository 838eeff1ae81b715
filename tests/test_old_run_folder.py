"""A run folder written before the package layout change (tests/data/run-before-layout: critique_revision, sft, preferences
and reward_model of the `tiny` preset, by the old code) still loads and resumes: its finished stages are skipped, not stale and
not rerun, and the remaining stages run. SFT and the reward model took TRL's trainer names (`epochs` -> `num_train_epochs`,
`grad_accum` -> `gradient_accumulation_steps`): a stored config in the old names loads with the new ones (`config.MIGRATIONS`),
and the fingerprints the old code stored from the old names still match (`config.fingerprint_form`)."""
import shutil
from pathlib import Path

import pytest
import yaml

from cai_workbench.core.config import ConfigError, fingerprint_form, migrate_fields
from cai_workbench.core.guards import stage_fingerprint
from cai_workbench.core.run import Run
from cai_workbench.pipeline import STAGES, PipelineConfig, current_fingerprint, load_config, run_pipeline, stale_stages
from cai_workbench.stages.reward_model import RewardModelConfig
from cai_workbench.stages.sft import SFTConfig

OLD_RUN = Path(__file__).parent/"data"/"run-before-layout"
DONE = ["critique_revision", "sft", "preferences", "reward_model"]
TODO = ["ppo", "dpo", "evaluation"]
IGNORE = ("save_every", "keep_last", "keep_checkpoints")
OLD_NAMES = {"sft": {"epochs": 1.0, "grad_accum": 1}, "reward_model": {"epochs": 1.0}}   # the old fields, at their defaults


def _files(d: Path) -> dict:
    "{relative path: (bytes, mtime_ns)} of every file under `d`."
    return {p.relative_to(d).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(d.rglob("*")) if p.is_file()}


def _old_fingerprint(rd: Path, stage: str, section: dict, model="tiny", seed=0) -> dict:
    "What the code before the layout change stored for `stage`: `stage_fingerprint` of the raw section, in the names it had."
    inputs = {rel: rd/rel for rel in STAGES[stage].read_by(section)}
    return stage_fingerprint(section, inputs, model=model, seed=seed, ignore=IGNORE)


@pytest.fixture
def old_run(tmp_path) -> Path:
    rd = tmp_path/"oldrun"
    shutil.copytree(OLD_RUN, rd)
    return rd


def test_the_committed_old_run_is_up_to_date_for_the_tiny_preset(old_run):
    run, (cfg, _) = Run(old_run), load_config("tiny")
    stored = yaml.safe_load((old_run/"config.yaml").read_text())
    for s in DONE:     # the old code's fingerprints are reproduced from the stored sections: the formula did not change
        assert run.stage_info(s)["fingerprint"] == _old_fingerprint(old_run, s, stored[s]) == current_fingerprint(run, s, cfg), s
    assert stale_stages(run, cfg) == {}


def test_an_old_run_folder_in_the_old_field_names_resumes_skipping_its_finished_stages(old_run, capsys):
    """The run's own config.yaml spells out the SFT / reward-model trainer fields in the old names, and its manifest holds the
    fingerprints the old code made of them; resuming with that config skips the four finished stages and runs the rest."""
    d = yaml.safe_load((old_run/"config.yaml").read_text())
    d["evaluation"]["prompts"] = ["contemplative"]   # as the tiny preset now: evaluating `demo`, which training read, would split it
    run = Run(old_run); m = run.manifest             # (training on demo@train: those stages stale) and is refused as overlap
    for s, old in OLD_NAMES.items():
        d[s] = {**d[s], **old}
        m["stages"][s]["fingerprint"] = _old_fingerprint(old_run, s, d[s])
    (old_run/"config.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    run.update_manifest(config=d, stages=m["stages"])
    before, fps = {s: _files(old_run/s) for s in DONE}, {s: m["stages"][s]["fingerprint"] for s in DONE}

    cfg, where = load_config(old_run/"config.yaml")             # migrated on the way in
    assert cfg.sft["gradient_accumulation_steps"] == 1 and "grad_accum" not in cfg.sft and "epochs" not in cfg.reward_model
    assert stale_stages(run, cfg) == {}
    res = run_pipeline(cfg, run_dir=old_run, where=where, progress=False)
    out = capsys.readouterr().out
    m = res.run.manifest
    for s in DONE:
        assert f"{s}: done already" in out and res.results[s] is None, s
        assert _files(old_run/s) == before[s], f"{s}: its outputs changed"
        assert m["stages"][s]["fingerprint"] == fps[s] and m["stages"][s]["status"] == "done", s
    for s in TODO:
        assert m["stages"][s]["status"] == "done" and res.results[s] is not None and m["stages"][s]["summary"], s
    assert (old_run/"ppo"/"adapter"/"adapter_config.json").exists() and (old_run/"dpo"/"adapter"/"adapter_config.json").exists()
    assert (old_run/"evaluation"/"summary.json").exists() and res.stale == {}
    saved = yaml.safe_load((old_run/"config.yaml").read_text())  # rewritten in the new names
    assert saved["sft"]["num_train_epochs"] == 1.0 and "grad_accum" not in saved["sft"] and "epochs" not in saved["reward_model"]


OLD_SECTIONS = {"sft": {"max_steps": 2, "epochs": 3.0, "grad_accum": 4}, "reward_model": {"max_steps": -1, "epochs": 2.0}}


def test_an_old_config_yaml_with_epochs_and_grad_accum_loads_with_the_new_names(old_run):
    d = yaml.safe_load((old_run/"config.yaml").read_text())
    for s, sec in OLD_SECTIONS.items(): d[s] = {**d[s], **sec}
    (old_run/"config.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    Run(old_run).update_manifest(config=d)
    for cfg in (PipelineConfig.from_yaml(old_run/"config.yaml"),                  # the run's config.yaml
                PipelineConfig.from_dict(Run(old_run).manifest["config"])):        # the manifest's copy
        sft, rm = cfg.stage_config("sft"), cfg.stage_config("reward_model")
        assert (sft.num_train_epochs, sft.gradient_accumulation_steps, rm.num_train_epochs) == (3.0, 4, 2.0)
        assert not {"epochs", "grad_accum"} & set(cfg.to_dict()["sft"]) and "epochs" not in cfg.to_dict()["reward_model"]
    # a stage's own config from a stored dict (e.g. sft/metrics.json's "config") too
    assert SFTConfig.from_dict({"epochs": 2, "grad_accum": 3}) == SFTConfig(num_train_epochs=2.0, gradient_accumulation_steps=3)
    assert RewardModelConfig.from_dict({"epochs": 5}).num_train_epochs == 5.0
    with pytest.raises(ConfigError, match="unknown field"): RewardModelConfig.from_dict({"grad_accum": 2})   # it never had one


def test_a_renamed_trainer_field_does_not_make_a_finished_stage_stale(old_run):
    run, cfg = Run(old_run), load_config("tiny")[0].to_dict()
    old = {**cfg["sft"], "epochs": 2.0, "grad_accum": 2}
    m = run.manifest
    m["stages"]["sft"]["fingerprint"] = _old_fingerprint(old_run, "sft", old)
    run.update_manifest(stages=m["stages"])
    new = PipelineConfig.from_dict({**cfg, "sft": {**cfg["sft"], "num_train_epochs": 2.0, "gradient_accumulation_steps": 2}})
    assert fingerprint_form("sft", new.sft) == old
    assert current_fingerprint(run, "sft", new) == m["stages"]["sft"]["fingerprint"] and "sft" not in stale_stages(run, new)
    assert "sft" not in stale_stages(run, PipelineConfig.from_dict({**cfg, "sft": old}))      # the old names, migrated
    changed = PipelineConfig.from_dict({**cfg, "sft": {**cfg["sft"], "num_train_epochs": 2.0, "gradient_accumulation_steps": 8}})
    assert stale_stages(run, changed)["sft"] == ["its config (or model/seed) changed"]


def test_migrate_fields_renames_the_old_names_and_refuses_both():
    assert migrate_fields("sft", {"epochs": 2, "grad_accum": 3, "batch_size": 1}) == \
        {"num_train_epochs": 2, "gradient_accumulation_steps": 3, "batch_size": 1}
    assert migrate_fields("ppo", {"epochs": 2}) == {"epochs": 2}          # PPO keeps its own fields
    with pytest.raises(ConfigError, match="grad_accum and gradient_accumulation_steps are one field"):
        PipelineConfig.from_dict({"sft": {"grad_accum": 2, "gradient_accumulation_steps": 4}})
