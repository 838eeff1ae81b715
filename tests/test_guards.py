"Issue 13: every training stage stops on NaN/inf (named stage, step, cause), keeps the previous adapter, marks the stage failed, and no JSON file gets NaN."
import json

import pytest
import torch

from cai_workbench.core.run import Run
from cai_workbench.core.guards import NonFiniteError
from cai_workbench.engine.models import LoraSpec

LORA = LoraSpec(r=4, alpha=8, dropout=0.0)
PROMPTS = ["Please explain how to bake bread.", "Write a poem.", "How do I stay safe online?", "Plan a trip."] * 4


def _strict_json(path):
    def no(c): raise AssertionError(f"{path}: {c} in JSON")
    return json.loads(path.read_text(), parse_constant=no)


def _sft(run, lr):
    from cai_workbench.stages.sft import SFTConfig, run_sft
    d = run.stage_dir("critique_revision")
    if not (d/"sft.jsonl").exists():
        (d/"sft.jsonl").write_text("".join(json.dumps({"id": str(i), "label": "benign", "prompt": [{"role": "user", "content": p}],
                                                       "completion": [{"role": "assistant", "content": "A short safe answer."}]}) + "\n"
                                           for i, p in enumerate(PROMPTS[:4])))
    return run_sft(run, SFTConfig(lora=LORA, max_steps=3, batch_size=2, learning_rate=lr, device="cpu"), model="tiny", progress=False)


def _pairs(run):
    p = run.stage_dir("preferences")/"pairs.jsonl"
    if not p.exists():
        p.write_text("".join(json.dumps(dict(id=f"p{i}", prompt=f"Please explain topic {i}.", chosen=f"A safe answer {i}.",
                                             rejected=f"A bad answer {i}.", soft_label=0.9, label="a", source="ai",
                                             label_source="ai")) + "\n" for i in range(12)))


def _dpo(run, lr):
    from cai_workbench.stages.dpo import DPOConfig, run_dpo
    _pairs(run)
    return run_dpo(run, DPOConfig(max_steps=3, batch_size=4, learning_rate=lr, lora=LORA), model="tiny", progress=False)


def _reward(run, lr):
    from cai_workbench.stages.reward_model import RewardModelConfig, run_reward_model
    _pairs(run)
    return run_reward_model(run, RewardModelConfig(min_pairs=4, eval_fraction=0.25, max_steps=3, batch_size=4, learning_rate=lr,
                                              human_pairs=None, lora=LORA, device="cpu"), model="tiny")


def _rloo(run, lr):
    from cai_workbench.feedback.reward_scoring import random_reward_adapter
    from cai_workbench.stages.rloo_grpo import RLOOConfig, run_rloo
    if not (run.path/"reward_model"/"adapter").exists(): random_reward_adapter(run.stage_dir("reward_model")/"adapter", base="tiny")
    return run_rloo(run, RLOOConfig(max_steps=3, batch_size=4, num_generations=2, generation={"max_new_tokens": 6}, learning_rate=lr,
                                         lora=LORA, device="cpu"), model="tiny", prompts=PROMPTS)


def _ppo(run, lr):
    "PPOConfig caps learning_rate at 1e-2, so the 'bad' run gets an absurd reward scale instead."
    from cai_workbench.stages.ppo import run_ppo, toy_config
    scale = 1.0 if lr < 1 else 1e30
    return run_ppo(run, toy_config(total_updates=2, batch_size=4, minibatch_size=4, save_every=1, learning_rate=1e-3, max_kl=1e9),
                   model="tiny", reward_fn=lambda p, r: [scale * len(x) for x in r], prompts=PROMPTS, progress=False)


@pytest.mark.parametrize("stage, train", [("sft", _sft), ("dpo", _dpo), ("reward_model", _reward), ("rloo", _rloo), ("ppo", _ppo)])
def test_learning_rate_1e30_stops_keeps_the_good_adapter_and_writes_no_nan(tmp_path, stage, train):
    run = Run.create(tmp_path/"run", seed=0, device="cpu")
    train(run, 1e-3)
    good = (run.path/stage/"adapter"/"adapter_model.safetensors").read_bytes()
    files = sorted(p.relative_to(run.path).as_posix() for p in (run.path/stage).rglob("*"))
    assert run.is_done(stage)
    if stage == "ppo": assert not (run.path/"ppo"/"checkpoints").exists()   # deleted when the stage finished: a fresh run over a good adapter
    with pytest.raises((NonFiniteError, RuntimeError)) as e:
        train(run, 1e30)
    msg = str(e.value)
    assert stage.split("_")[0] in msg.lower() and ("step" in msg or "update" in msg) and "learning_rate" in msg, msg
    assert "nan" in msg.lower() or "non-finite" in msg.lower() or "inf" in msg.lower(), msg
    assert (run.path/stage/"adapter"/"adapter_model.safetensors").read_bytes() == good      # the previous adapter is kept
    if stage != "ppo":                                                  # (PPO keeps its resume state: metrics, checkpoints)
        assert sorted(p.relative_to(run.path).as_posix() for p in (run.path/stage).rglob("*")) == files   # no partial files
    info = _strict_json(run.path/"manifest.json")["stages"][stage]
    assert info["status"] == "failed" and msg[:60] in info["error"]
    for f in run.path.rglob("*.json"): _strict_json(f)


# --- config checks that run before any model loads ---------------------------------------------------------------
from cai_workbench.core.config import ConfigError


@pytest.mark.parametrize("stage, section, field", [
    ("dpo", {"learning_rate": 0}, "learning_rate"), ("reward_model", {"learning_rate": 0}, "learning_rate"),
    ("dpo", {"batch_size": 0}, "batch_size"), ("reward_model", {"batch_size": -1}, "batch_size"),
    ("critique_revision", {"generation": {"batch_size": 0}}, "batch_size"),
    ("critique_revision", {"generation": {"temperature": -0.5}}, "temperature"),
    ("critique_revision", {"generation": {"max_new_tokens": 0}}, "max_new_tokens"),
    ("sft", {"batch_size": 0}, "batch_size"), ("rloo", {"batch_size": 0}, "batch_size"),
])
def test_bad_settings_fail_before_any_model_loads(tmp_path, capsys, monkeypatch, stage, section, field):
    import yaml
    from cai_workbench.engine import models
    from cai_workbench.cli import main
    monkeypatch.setattr(models, "load_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("a model was loaded")))
    cfg = tmp_path/"c.yaml"; cfg.write_text(yaml.safe_dump({"model": "tiny", "stages": [stage], stage: section}))
    assert main(["run", str(cfg), "--run-dir", str(tmp_path/"run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and field in err and "Traceback" not in err, err
    assert not (tmp_path/"run").exists()                                       # nothing created


def test_non_utf8_constitution_names_the_file(tmp_path):
    from cai_workbench.inputs.constitution import ConstitutionError, load_constitution
    for name in ("c.yaml", "c.md", "c.json"):
        p = tmp_path/name; p.write_bytes("principles:\n  - name: caf\xe9\n".encode("latin-1"))
        with pytest.raises(ConstitutionError, match=f"{p}: not UTF-8 text"):
            load_constitution(p)


def test_huge_prompt_is_cut_with_a_warning_and_the_others_answered(tiny):
    from cai_workbench.engine.generator import GenerationConfig, Generator
    model, tok = tiny
    gen = Generator(model, tok, GenerationConfig(max_new_tokens=3, batch_size=4), progress=False)
    huge = "word " * 20_000                                                     # ~20 k tokens, the context is 1024
    with pytest.warns(UserWarning, match=r"1 of 3 prompt\(s\) are longer than 1021 tokens"):
        out = gen.generate(["hi", huge, "hello"])
    assert [o.prompt_tokens for o in out][1] == 1021 and out[0].prompt_tokens < 30 and all(o.completion_tokens > 0 for o in out)
    with pytest.warns(UserWarning, match="skipped"):
        out = gen.generate(["hi", huge], long_prompts="skip", max_prompt_tokens=64)
    assert out[1].finish_reason == "skipped" and out[1].text == "" and out[0].finish_reason in ("stop", "length")
    ids = gen.encode([huge], cfg=gen.config.replace(max_prompt_tokens=100))[0]          # PPO's queries: the same cut
    assert len(ids) == 100 and ids[-3:] == gen.encode(["word"])[0][-3:]


def test_fingerprint_of_a_set_does_not_depend_on_the_hash_seed():
    "PEFT turns target_modules into a set; its repr() order changes with PYTHONHASHSEED from one process to the next."
    import subprocess, sys
    code = "from cai_workbench.core.guards import fingerprint; print(fingerprint({'q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj'}))"
    out = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**__import__('os').environ, "PYTHONHASHSEED": str(s)}).stdout for s in range(6)}
    assert len(out) == 1, out
