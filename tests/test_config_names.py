"""One shape for every stage (issue 15 §4): `XConfig` beside `run_x`, `limit`, nested `generation`, `start_from`,
`seed: int | None`; every preset loads; a field renamed since an older version fails with one error naming the new one."""
import dataclasses, typing

import pytest

from cai_workbench.core.config import ConfigError
from cai_workbench.engine.generator import GenerationConfig
from cai_workbench.pipeline import PRESETS_DIR, STAGES, PipelineConfig, load_config
from cai_workbench.cli import main

GENERATING = {"critique_revision", "preferences", "ppo", "rloo", "grpo", "evaluation"}   # stages that sample text
STARTING = {"preferences", "ppo", "rloo", "grpo", "dpo"}                                   # stages that may start from sft/adapter


def _camel(stage: str) -> str:
    return "".join(w.upper() if w in ("sft", "ppo", "rloo", "grpo", "dpo") else w.capitalize() for w in stage.split("_"))


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_config_is_named_after_its_runner_and_shaped_alike(stage):
    spec = STAGES[stage]
    assert (spec.config_class, spec.runner) == (f"{_camel(stage)}Config", f"run_{stage}")
    cls, runner = spec.load()
    assert cls.__name__ == spec.config_class and runner.__name__ == spec.runner
    f = {x.name: x for x in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    assert "prompt_limit" not in f and "use_sft_adapter" not in f and "start_from_sft" not in f and "policy" not in f
    if stage in GENERATING:
        assert hints["generation"] is GenerationConfig and "max_new_tokens" not in f and "temperature" not in f
    if stage in STARTING: assert cls().start_from == "sft" and typing.get_args(hints["start_from"]) == ("sft", "base")
    assert f["seed"].default is None and hints["seed"] == int | None   # None: the run's seed


@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
def test_every_preset_loads_and_checks(preset):
    cfg, where = load_config(preset)
    built = cfg.check(where)
    assert set(built) == set(cfg.stages)


OLD = [("ppo", {"prompt_limit": 16}, "prompt_limit was renamed: write `limit: 16`"),
       ("ppo", {"max_new_tokens": 24}, "write `generation: {max_new_tokens: 24}`"),
       ("ppo", {"use_sft_adapter": False}, "write `start_from: base`"),
       ("rloo", {"prompt_limit": 8}, "write `limit: 8`"),
       ("grpo", {"max_completion_length": 24}, "write `generation: {max_new_tokens: 24}`"),
       ("dpo", {"start_from_sft": False}, "write `start_from: base`"),
       ("preferences", {"temperature": 0.7}, "write `generation: {temperature: 0.7}`"),
       ("preferences", {"policy": None}, "write `start_from: sft`")]   # reward_model's activation_checkpointing: read as gradient_checkpointing (issue 31)


@pytest.mark.parametrize("stage,section,msg", OLD)
def test_an_old_field_name_is_refused_naming_the_new_one(tmp_path, capsys, stage, section, msg):
    import yaml
    p = tmp_path/"old.yaml"
    p.write_text(yaml.safe_dump({"name": "old", "model": "tiny", "stages": [stage], stage: section}))
    cfg, where = load_config(p)
    with pytest.raises(ConfigError, match=f"{p}.{stage}.*" + msg.replace("{", r"\{").replace("}", r"\}").replace(".", r"\.")):
        cfg.check(where)
    assert main(["run", str(p), "--run-dir", str(tmp_path/"run")]) == 2      # the command line: one line, exit 2, nothing run
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and msg in err and "Traceback" not in err and not (tmp_path/"run").exists()


def test_a_partial_generation_block_keeps_the_stages_other_defaults():
    cfg = PipelineConfig.from_dict({"stages": ["ppo", "preferences"], "ppo": {"generation": {"max_new_tokens": 8}},
                                    "preferences": {"generation": {"max_new_tokens": 8}}})
    ppo, prefs = cfg.stage_config("ppo"), cfg.stage_config("preferences")
    assert (ppo.generation.max_new_tokens, ppo.generation.temperature, ppo.generation.exact) == (8, 1.0, True)
    assert (prefs.generation.temperature, prefs.generation.top_p, prefs.generation.batch_size) == (1.0, 0.95, 16)


def test_the_data_filters_seed_defaults_to_the_stage_seed():
    from cai_workbench.inputs.data_filters import DataFilterConfig, filter_pairs
    f = {x.name: x for x in dataclasses.fields(DataFilterConfig)}
    assert f["seed"].default is None and typing.get_type_hints(DataFilterConfig)["seed"] == int | None
    many = [{"id": f"p{i}", "prompt": f"Topic {i}?", "chosen": f"Answer number {i} is fine.", "rejected": f"Reply {i} is not.",
             "source": "ai", "principle": "a"} for i in range(8)]
    kept = lambda cfg, seed: [p["id"] for p in filter_pairs(many, cfg, seed=seed).kept]
    cap = DataFilterConfig(max_per_principle=3)
    assert len({tuple(kept(cap, s)) for s in range(6)}) > 1 and kept(cap, 4) == kept(cap, 4)
    assert kept(cap.replace(seed=2), 4) == kept(cap, 2)


REMOVED_ALIASES = [("critique_revision", "CritiqueConfig", "CritiqueRevisionConfig"), ("sft", "SFTStageConfig", "SFTConfig"),
                   ("preferences", "PreferenceConfig", "PreferencesConfig"), ("reward_model", "RewardConfig", "RewardModelConfig"),
                   ("rloo_grpo", "RLStageConfig", "RLConfig"), ("rloo_grpo", "RLOOStageConfig", "RLOOConfig"),
                   ("rloo_grpo", "GRPOStageConfig", "GRPOConfig"), ("dpo", "DPOStageConfig", "DPOConfig"),
                   ("evaluation", "EvalConfig", "EvaluationConfig")]


@pytest.mark.parametrize("module,old,new", REMOVED_ALIASES)
def test_the_config_names_before_issue_15_are_gone(module, old, new):
    import importlib
    mod = importlib.import_module(f"cai_workbench.stages.{module}")
    assert not hasattr(mod, old) and old not in getattr(mod, "__all__", []) and hasattr(mod, new)


@pytest.mark.parametrize("stage", ["sft", "reward_model", "dpo"])
def test_the_trainer_stages_use_trls_field_names(stage):
    "One scheme for the TRL-trained stages: `num_train_epochs` (and `gradient_accumulation_steps` where there is one), as TRL names them."
    f = {x.name for x in dataclasses.fields(STAGES[stage].load()[0])}
    assert "num_train_epochs" in f and not {"epochs", "grad_accum"} & f
    if stage != "reward_model": assert "gradient_accumulation_steps" in f


def test_a_bad_value_is_one_config_error_naming_config_field_value_and_fix(tmp_path):
    "Every stage's checks raise `ConfigError` (a `ValueError`) as `<Config>.<field>=<value>: <what to do>`, after the file and section."
    p = tmp_path/"bad.yaml"
    cases = {"dpo": ({"beta": 0}, "DPOConfig.beta=0.0: must be > 0"),
             "evaluation": ({"pairwise": "some"}, "EvaluationConfig.pairwise='some': use 'vs_base', 'all' or 'none'"),
             "sft": ({"gradient_accumulation_steps": 0}, "SFTConfig.gradient_accumulation_steps=0: must be >= 1"),
             "reward_model": ({"ties": "x"}, "RewardModelConfig.ties='x': use 'skip' or 'weight'"),
             "critique_revision": ({"rounds": 0}, "CritiqueRevisionConfig.rounds=0: must be an integer >= 1")}
    for stage, (section, msg) in cases.items():
        p.write_text(yaml_dump({"model": "tiny", "stages": [stage], stage: section}))
        cfg, where = load_config(p)
        with pytest.raises(ConfigError) as e: cfg.check(where)
        assert str(e.value).startswith(f"{p}.{stage}: {msg}"), str(e.value)
    with pytest.raises(ConfigError, match=r"PipelineConfig.on_stale='never': use 'rerun' or 'refuse'"):
        PipelineConfig.from_dict({"on_stale": "never"})


def yaml_dump(d) -> str:
    import yaml
    return yaml.safe_dump(d)
