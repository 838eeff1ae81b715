"Issue 13: every training stage stops on NaN/inf (named stage, step, cause), keeps the previous adapter, marks the stage failed, and no JSON file gets NaN."
import json

import pytest
import torch

from cai_workbench.core import Run
from cai_workbench.guards import NonFiniteError
from cai_workbench.models import LoraSpec

LORA = LoraSpec(r=4, alpha=8, dropout=0.0)
PROMPTS = ["Please explain how to bake bread.", "Write a poem.", "How do I stay safe online?", "Plan a trip."] * 4


def _strict_json(path):
    def no(c): raise AssertionError(f"{path}: {c} in JSON")
    return json.loads(path.read_text(), parse_constant=no)


def _sft(run, lr):
    from cai_workbench.sft import SFTStageConfig, run_sft
    d = run.stage_dir("critique_revision")
    if not (d/"sft.jsonl").exists():
        (d/"sft.jsonl").write_text("".join(json.dumps({"id": str(i), "label": "benign", "prompt": [{"role": "user", "content": p}],
                                                       "completion": [{"role": "assistant", "content": "A short safe answer."}]}) + "\n"
                                           for i, p in enumerate(PROMPTS[:4])))
    return run_sft(run, SFTStageConfig(lora=LORA, max_steps=3, batch_size=2, learning_rate=lr, device="cpu"), model="tiny", progress=False)


def _pairs(run):
    p = run.stage_dir("preferences")/"pairs.jsonl"
    if not p.exists():
        p.write_text("".join(json.dumps(dict(id=f"p{i}", prompt=f"Please explain topic {i}.", chosen=f"A safe answer {i}.",
                                             rejected=f"A bad answer {i}.", soft_label=0.9, label="a", source="ai",
                                             label_source="ai")) + "\n" for i in range(12)))


def _dpo(run, lr):
    from cai_workbench.dpo import DPOStageConfig, run_dpo
    _pairs(run)
    return run_dpo(run, DPOStageConfig(max_steps=3, batch_size=4, learning_rate=lr, lora=LORA), model="tiny", progress=False)


def _reward(run, lr):
    from cai_workbench.reward import RewardConfig, run_reward_model
    _pairs(run)
    return run_reward_model(run, RewardConfig(min_pairs=4, eval_fraction=0.25, max_steps=3, batch_size=4, learning_rate=lr,
                                              human_pairs=None, lora=LORA, device="cpu"), model="tiny")


def _rloo(run, lr):
    from cai_workbench.reward_scoring import random_reward_adapter
    from cai_workbench.rloo_grpo import RLOOStageConfig, run_rloo
    if not (run.path/"reward_model"/"adapter").exists(): random_reward_adapter(run.stage_dir("reward_model")/"adapter", base="tiny")
    return run_rloo(run, RLOOStageConfig(max_steps=3, batch_size=4, num_generations=2, max_completion_length=6, learning_rate=lr,
                                         lora=LORA, device="cpu"), model="tiny", prompts=PROMPTS)


def _ppo(run, lr):
    "PPOConfig caps learning_rate at 1e-2, so the 'bad' run gets an absurd reward scale instead."
    from cai_workbench.ppo_runner import run_ppo, toy_config
    scale = 1.0 if lr < 1 else 1e30
    return run_ppo(run, toy_config(total_updates=2, batch_size=4, minibatch_size=4, save_every=1, learning_rate=1e-3, max_kl=1e9),
                   model="tiny", reward_fn=lambda p, r: [scale * len(x) for x in r], prompts=PROMPTS, progress=False)


@pytest.mark.parametrize("stage, train", [("sft", _sft), ("dpo", _dpo), ("reward_model", _reward), ("rloo", _rloo), ("ppo", _ppo)])
def test_learning_rate_1e30_stops_keeps_the_good_adapter_and_writes_no_nan(tmp_path, stage, train):
    run = Run.create(tmp_path/"run", seed=0, device="cpu")
    train(run, 1e-3)
    good = (run.path/stage/"adapter"/"adapter_model.safetensors").read_bytes()
    assert run.is_done(stage)
    if stage == "ppo": (run.path/"ppo"/"checkpoint").rename(run.path/"ppo"/"old-checkpoint")   # a fresh run over a good adapter
    with pytest.raises((NonFiniteError, RuntimeError)) as e:
        train(run, 1e30)
    msg = str(e.value)
    assert stage.split("_")[0] in msg.lower() and ("step" in msg or "update" in msg) and "learning_rate" in msg, msg
    assert "nan" in msg.lower() or "non-finite" in msg.lower() or "inf" in msg.lower(), msg
    assert (run.path/stage/"adapter"/"adapter_model.safetensors").read_bytes() == good      # the previous adapter is kept
    info = _strict_json(run.path/"manifest.json")["stages"][stage]
    assert info["status"] == "failed" and msg[:60] in info["error"]
    for f in run.path.rglob("*.json"): _strict_json(f)
