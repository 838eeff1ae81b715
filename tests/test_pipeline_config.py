"""The top of a pipeline config says once what the experiment is about and how models load (issue 31 item 1): `constitution`,
`prompts`, `eval_prompts`, `dtype`, `load_in_4bit`, `gradient_checkpointing`, `attn_implementation`, inherited by every stage
whose config has the field and whose section does not set it (`PipelineConfig.section`). Fingerprints are taken on the
resolved sections, so moving a value to the top does not make a finished stage stale. Training and evaluation never read the
same prompts by default (issue 30 item 1): a shared source is `@train` for training and `@heldout` for evaluation."""
import shutil
from pathlib import Path

import pytest
import yaml

from cai_workbench.core.config import ConfigError, fingerprint_form
from cai_workbench.core.guards import stage_fingerprint
from cai_workbench.core.run import Run
from cai_workbench.inputs.prompts import load_prompts
from cai_workbench.pipeline import _files_in, STAGES, PipelineConfig, current_fingerprint, load_config, run_pipeline, stale_stages

DATA = Path(__file__).parent/"data"
OLD_RUN = DATA/"run-before-layout"
LOADS_A_MODEL = ["critique_revision", "sft", "preferences", "reward_model", "ppo", "rloo", "grpo", "dpo", "evaluation"]
TRAINS = ["sft", "reward_model", "ppo", "rloo", "grpo", "dpo"]
ALL = list(STAGES)


def test_a_stage_takes_only_the_top_level_fields_its_config_has():
    cfg = PipelineConfig(stages=ALL, constitution="probe", prompts="probe-train", dtype="float32", gradient_checkpointing=True,
                         attn_implementation="eager", load_in_4bit=False)
    cr, sft, ev = cfg.section("critique_revision"), cfg.section("sft"), cfg.section("evaluation")
    assert cr == {"constitution": "probe", "prompts": "probe-train@train", "dtype": "float32", "attn_implementation": "eager",
                  "load_in_4bit": False}                       # no gradient_checkpointing: the stage only generates
    assert sft == {"dtype": "float32", "attn_implementation": "eager", "load_in_4bit": False, "gradient_checkpointing": True}
    assert ev["constitution"] == "probe" and ev["prompts"] == ["probe-train@heldout"]   # judged against the run's constitution
    assert "constitution" not in cfg.section("probe") and "prompts" not in cfg.section("dpo")
    assert PipelineConfig(stages=ALL).section("critique_revision") == {}   # nothing set at the top: the section as written
    for s in LOADS_A_MODEL:
        c = cfg.stage_config(s)
        assert (c.dtype, c.attn_implementation) == ("float32", "eager"), s
        if s in TRAINS: assert c.gradient_checkpointing is True and c.checkpointing(False) is True, s


def test_a_value_in_the_stage_section_wins():
    cfg = PipelineConfig.from_dict({"stages": ALL, "constitution": "probe", "prompts": "demo", "eval_prompts": ["benign"],
                                    "dtype": "bfloat16", "gradient_checkpointing": True,
                                    "critique_revision": {"constitution": "harmless", "prompts": "red-team"},
                                    "evaluation": {"constitution": "harmless"}, "dpo": {"dtype": "float32", "gradient_checkpointing": False}})
    assert cfg.stage_config("critique_revision").constitution == "harmless" and cfg.stage_config("preferences").constitution == "probe"
    assert cfg.stage_config("evaluation").constitution == "harmless"          # evaluation names another: it keeps it
    assert cfg.stage_config("critique_revision").prompts == "red-team" and cfg.stage_config("ppo").prompts == "demo"
    assert cfg.stage_config("evaluation").prompts == ["benign"]
    dpo = cfg.stage_config("dpo")
    assert (dpo.dtype, dpo.gradient_checkpointing, dpo.checkpointing(True)) == ("float32", False, False)
    assert cfg.stage_config("sft").dtype == "bfloat16"


def test_bad_top_level_values_are_one_clear_error():
    with pytest.raises(ConfigError, match=r"PipelineConfig.dtype='fp8'.*bfloat16, float16 or float32"): PipelineConfig(dtype="fp8")
    with pytest.raises(ConfigError, match=r"prompts.*split suffix applies to the whole source"): PipelineConfig(prompts=["a@train", "b"])
    with pytest.raises(ConfigError, match=r"eval_prompts.*empty"): PipelineConfig(eval_prompts=[])
    with pytest.raises(ConfigError, match=r"config.sft.dtype: 'fp8' is not one of"):
        PipelineConfig.from_dict({"sft": {"dtype": "fp8"}}).stage_config("sft")


# ---- the defaults rule (issue 30 item 1)

def test_a_source_training_and_evaluation_share_is_split_unless_a_suffix_says_otherwise():
    cfg = PipelineConfig(stages=ALL, prompts="demo")                      # eval_prompts defaults to the held-out part
    assert [cfg.section(s)["prompts"] for s in ("critique_revision", "preferences", "ppo", "rloo", "grpo")] == ["demo@train"]*5
    assert cfg.section("evaluation")["prompts"] == ["demo@heldout"]
    both = PipelineConfig.from_dict({"stages": ALL, "prompts": "red-team+benign", "eval_prompts": ["benign", "xstest.csv?"],
                                     "ppo": {"prompts": "red-team@val"}})
    assert both.section("critique_revision")["prompts"] == "red-team+benign@train" and both.section("ppo")["prompts"] == "red-team@val"
    assert both.section("evaluation")["prompts"] == ["benign@heldout", "xstest.csv?"]   # a source only evaluation reads: whole
    # the library defaults (PPO on red-team, evaluation on red-team + benign) no longer evaluate PPO's training prompts
    lib = PipelineConfig(stages=["ppo", "evaluation"])
    assert lib.section("ppo") == {"prompts": "red-team@train"} and lib.section("evaluation") == {"prompts": ["red-team@heldout", "benign"]}
    ppo, ev = lib.stage_config("ppo"), lib.stage_config("evaluation")
    trained = set(load_prompts(ppo.prompts, limit=ppo.limit).ids)
    assert trained and not trained & {i for src in ev.prompts for i in load_prompts(src).ids}
    # without evaluation in the stages nothing is split
    assert PipelineConfig(stages=["ppo"]).section("ppo") == {}


def _prompts_read(cfg: PipelineConfig, stages) -> tuple[set, set]:
    "(ids, texts) of every prompt the `stages` of `cfg` read (their resolved sources, whole)."
    ids, texts = set(), set()
    for s in stages:
        if s not in cfg.stages: continue
        srcs = cfg.stage_config(s).prompts
        for src in [srcs] if isinstance(srcs, str) else srcs:
            ps = load_prompts(src)
            ids |= set(ps.ids); texts |= {t.strip().lower() for t in ps.texts}
    return ids, texts


@pytest.mark.parametrize("preset", ["demo", "tiny"])
def test_the_demo_and_tiny_presets_evaluate_no_prompt_any_stage_trains_on(preset):
    cfg, _ = load_config(preset)
    tr_ids, tr_texts = _prompts_read(cfg, ["critique_revision", "preferences", "ppo", "rloo", "grpo"])
    ev_ids, ev_texts = _prompts_read(cfg, ["evaluation"])
    assert tr_ids and ev_ids and not tr_ids & ev_ids and not tr_texts & ev_texts
    assert "prompts" not in cfg.critique_revision and cfg.prompts       # read from the top


# ---- fingerprints on resolved values

def _done(run: Run, cfg: PipelineConfig, stages):
    "Mark `stages` done in `run` with the fingerprints `cfg` gives them now."
    m = run.manifest
    for s in stages: m["stages"][s] = {"status": "done", "fingerprint": current_fingerprint(run, s, cfg)}
    run.update_manifest(stages=m["stages"])


PER_STAGE = {"stages": ["critique_revision", "sft", "preferences", "evaluation"], "model": "tiny",
             "critique_revision": {"constitution": "probe", "prompts": "probe-train", "limit": 4, "dtype": "float32"},
             "sft": {"max_steps": 2, "dtype": "float32", "gradient_checkpointing": True},
             "preferences": {"constitution": "probe", "prompts": "probe-train", "dtype": "float32"},
             "evaluation": {"constitution": "probe", "prompts": ["probe-heldout"], "dtype": "float32"}}
AT_THE_TOP = {"stages": ["critique_revision", "sft", "preferences", "evaluation"], "model": "tiny", "constitution": "probe",
              "prompts": "probe-train", "eval_prompts": ["probe-heldout"], "dtype": "float32", "gradient_checkpointing": True,
              "critique_revision": {"limit": 4}, "sft": {"max_steps": 2}}


@pytest.mark.parametrize("before,after", [(PER_STAGE, AT_THE_TOP), (AT_THE_TOP, PER_STAGE)], ids=["to-the-top", "into-the-stages"])
def test_moving_a_value_between_a_stage_and_the_top_does_not_make_the_stage_stale(tmp_path, before, after):
    run = Run.create(tmp_path/"r", config=PipelineConfig.from_dict(before), seed=0)
    _done(run, PipelineConfig.from_dict(before), before["stages"])
    assert stale_stages(run, PipelineConfig.from_dict(after)) == {}
    changed = PipelineConfig.from_dict({**after, "dtype": "bfloat16"} if "dtype" in after else {**after, "sft": {**after["sft"], "dtype": "bfloat16"}})
    assert "sft" in stale_stages(run, changed)                        # a different value is a change


@pytest.mark.parametrize("preset", ["probe", "study"])
def test_the_probe_and_study_presets_keep_their_fingerprints(tmp_path, preset):
    "Their sections as they were before the top-level fields (tests/data/presets-before-top-level) hash as the new presets do."
    old = yaml.safe_load((DATA/"presets-before-top-level"/f"{preset}.yaml").read_text())
    cfg, _ = load_config(preset)
    run = Run.create(tmp_path/"r", config=cfg, seed=0)
    for s in cfg.stages:
        raw = old.get(s) or {}
        inputs = {rel: run.path/rel for rel in STAGES[s].read_by(raw)} | _files_in(raw)   # files a section names are inputs
        was = stage_fingerprint(fingerprint_form(s, raw), inputs, model=old["model"], seed=old["seed"],
                                ignore=("save_every", "keep_last", "keep_checkpoints"))
        assert current_fingerprint(run, s, cfg) == was, s


def test_reward_model_activation_checkpointing_is_read_as_gradient_checkpointing_and_keeps_its_fingerprint(tmp_path):
    old = PipelineConfig.from_dict({"stages": ["reward_model"], "reward_model": {"activation_checkpointing": True}})
    assert old.reward_model == {"gradient_checkpointing": True} and old.stage_config("reward_model").gradient_checkpointing is True
    run = Run.create(tmp_path/"r", config=old, seed=0)
    stored = stage_fingerprint({"activation_checkpointing": True}, {}, model="embedded", seed=0,
                               ignore=("save_every", "keep_last", "keep_checkpoints"))   # what the code before the rename stored
    assert current_fingerprint(run, "reward_model", old) == stored
    top = PipelineConfig.from_dict({"stages": ["reward_model"], "gradient_checkpointing": True})
    assert current_fingerprint(run, "reward_model", top) == stored


# ---- every stage honours the model settings

class _Stop(Exception):
    "Raised by a spy once it has seen what it came for."


@pytest.fixture
def old_run(tmp_path) -> Path:
    rd = tmp_path/"run"
    shutil.copytree(OLD_RUN, rd)
    return rd


_MODULE = {"critique_revision": "critique_revision", "sft": "sft", "preferences": "preferences", "ppo": "ppo",
           "rloo": "rloo_grpo", "grpo": "rloo_grpo", "dpo": "dpo", "evaluation": "evaluation"}


@pytest.mark.parametrize("stage", list(_MODULE))
def test_every_stage_loads_its_model_with_the_top_level_settings(old_run, monkeypatch, stage):
    "A spy in place of the stage module's `load_model` sees the dtype and attention kernel set at the top of the config."
    import importlib
    mod = importlib.import_module(f"cai_workbench.stages.{_MODULE[stage]}")
    seen = {}
    def spy(name, **kw): seen.update(kw); raise _Stop
    monkeypatch.setattr(mod, "load_model", spy)
    d = yaml.safe_load((old_run/"config.yaml").read_text())
    cfg = PipelineConfig.from_dict({**d, "stages": d["stages"] + ["rloo", "grpo"], "dtype": "float32", "attn_implementation": "eager",
                                    "evaluation": {**d["evaluation"], "prompts": ["contemplative"]}})   # none that the run trained on
    with pytest.raises(_Stop): run_pipeline(cfg, run_dir=old_run, stages=[stage], force=True, progress=False)
    assert (seen.get("dtype"), seen.get("attn_implementation"), seen.get("load_in_4bit")) == ("float32", "eager", False), seen
    assert Run(old_run).stage_info(stage)["status"] == "failed"


def test_reward_model_loads_with_the_top_level_settings(old_run, monkeypatch):
    import torch, transformers
    seen = {}
    def spy(path, **kw): seen.update(kw); raise _Stop
    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", spy)
    d = yaml.safe_load((old_run/"config.yaml").read_text())
    with pytest.raises(_Stop):
        run_pipeline(PipelineConfig.from_dict({**d, "dtype": "bfloat16", "attn_implementation": "eager"}), run_dir=old_run,
                     stages=["reward_model"], force=True, progress=False)
    assert (seen["dtype"], seen["attn_implementation"]) == (torch.bfloat16, "eager")


@pytest.mark.parametrize("stage,trainer", [("sft", "trl.SFTTrainer"), ("dpo", "cai_workbench.stages.dpo.ConfidenceDPOTrainer")])
@pytest.mark.parametrize("dtype,checkpointing", [("bfloat16", True), ("float32", False)])
def test_sft_and_dpo_train_the_model_in_the_dtype_and_with_the_checkpointing_asked_for(old_run, monkeypatch, stage, trainer,
                                                                                       dtype, checkpointing):
    "The stage builds and starts its trainer; a spy in place of `training_step` looks at the model and stops before the first step."
    import importlib, torch
    mod, _, name = trainer.rpartition(".")
    cls = getattr(importlib.import_module(mod), name)
    seen = {}
    def spy(self, *a, **kw):
        base = [p for n, p in self.model.named_parameters() if "lora_" not in n]
        seen.update(dtype=base[0].dtype, checkpointing=self.model.is_activation_checkpointing, flag=self.args.activation_checkpointing)
        raise _Stop
    monkeypatch.setattr(cls, "training_step", spy)
    d = yaml.safe_load((old_run/"config.yaml").read_text())
    cfg = PipelineConfig.from_dict({**d, "dtype": dtype, "gradient_checkpointing": checkpointing})
    with pytest.raises(_Stop): run_pipeline(cfg, run_dir=old_run, stages=[stage], force=True, progress=False)
    assert seen == {"dtype": getattr(torch, dtype), "checkpointing": checkpointing, "flag": checkpointing}


def test_the_manifest_records_the_values_a_stage_ran_with(tmp_path, monkeypatch):
    from cai_workbench.core.run import StageResult

    class Done(StageResult):
        def summary(self): return {"ok": 1}

    spec = STAGES["critique_revision"]
    monkeypatch.setitem(STAGES, "critique_revision", type(spec)(spec.name, spec.module, spec.config_class, "run_critique_revision"))
    monkeypatch.setattr(type(spec), "load", lambda self: (importlib_cls(self), lambda run, cfg, model, progress: Done()))
    cfg = PipelineConfig(stages=["critique_revision"], constitution="probe", prompts="probe-train", dtype="float32",
                         critique_revision={"limit": 2})
    res = run_pipeline(cfg, run_dir=tmp_path/"r", progress=False)
    info = res.run.manifest["stages"]["critique_revision"]
    assert info["config"]["constitution"] == "probe" and info["config"]["prompts"] == "probe-train" and info["config"]["limit"] == 2
    assert info["config"]["dtype"] == "float32" and info["from_top"] == ["constitution", "dtype", "prompts"]


def importlib_cls(spec):
    import importlib
    return getattr(importlib.import_module(spec.module), spec.config_class)
