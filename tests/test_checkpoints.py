"In-stage checkpoints: a SIGKILLed SFT resumes with the same next losses, resume never unpickles code, stale checkpoints are not used, finished stages clean up."
import json, os, signal, subprocess, sys, textwrap
from pathlib import Path

import pytest
import torch

from cai_workbench.core.run import Run
from cai_workbench.core.io import read_json
from cai_workbench.engine.models import LoraSpec
from cai_workbench.stages.sft import SFTConfig, run_sft

REPO = Path(__file__).resolve().parents[1]
EX = [("How do I pick a lock?", "I can't help with breaking into places; a locksmith can help you."),
      ("Write a haiku about rain.", "Soft rain on the roof, the garden drinks it slowly, clouds drift into night."),
      ("How can I hack wifi?", "I can't help with accessing networks without permission."),
      ("Explain vaccines.", "Vaccines train the immune system to recognise a germ safely.")]
CFG = dict(lora={"r": 4, "alpha": 8, "dropout": 0.0}, max_steps=6, batch_size=2, learning_rate=5e-3, device="cpu", save_every=2, keep_last=2)


def sft_run(path) -> Run:
    run = Run.create(path)
    (run.stage_dir("critique_revision")/"sft.jsonl").write_text("".join(
        json.dumps({"id": str(i), "prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": c}]}) + "\n"
        for i, (p, c) in enumerate(EX)))
    return run


KILL_AT_4 = textwrap.dedent("""
    import os, signal, sys
    import cai_workbench.core.checkpoints as C
    from cai_workbench.core.run import Run
    from cai_workbench.stages.sft import SFTConfig, run_sft
    orig = C.CheckpointGuard.on_save
    def on_save(self, args, state, control, **kw):
        orig(self, args, state, control, **kw)
        if state.global_step == 4: os.kill(os.getpid(), signal.SIGKILL)     # killed right after its 2nd checkpoint
    C.CheckpointGuard.on_save = on_save
    run_sft(Run(sys.argv[1]), SFTConfig.from_dict(%r), model="tiny", progress=False)
""")


def losses(run): return [l for _, l in read_json(run.path/"sft"/"metrics.json")["losses"]]


def test_sigkilled_sft_resumes_with_the_same_losses(tmp_path, monkeypatch):
    full = sft_run(tmp_path/"full")
    run_sft(full, SFTConfig.from_dict(CFG), model="tiny", progress=False)
    assert not (full.path/"sft"/"checkpoints").exists()                 # a finished stage deletes its checkpoints

    run = sft_run(tmp_path/"killed")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-c", KILL_AT_4 % CFG, str(run.path)], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    ck = run.path/"sft"/"checkpoints"
    assert sorted(x.name for x in ck.iterdir() if x.name.startswith("checkpoint-")) == ["checkpoint-2", "checkpoint-4"]
    assert not list(ck.rglob("training_args.bin"))                    # the pickle-only file is removed
    assert run.stage_info("sft")["status"] == "running"                 # it never got to say it failed

    loads = []
    real = torch.load
    def spy(*a, **kw): loads.append(kw.get("weights_only")); return real(*a, **kw)
    monkeypatch.setattr(torch, "load", spy)
    run_sft(run, SFTConfig.from_dict(CFG), model="tiny", progress=False)
    assert loads and all(w is True for w in loads), loads               # optimizer/scheduler/rng state: weights_only=True
    got, want = losses(run), losses(full)
    assert len(got) == len(want) == 6
    assert got == pytest.approx(want, abs=1e-4), (got, want)            # steps 5-6 after the resume equal the uninterrupted run's
    assert run.is_done("sft") and not ck.exists()


def test_changed_config_starts_over_and_keep_checkpoints(tmp_path, capsys):
    run = sft_run(tmp_path/"r")
    cfg = {**CFG, "max_steps": 4, "keep_checkpoints": True, "keep_last": 1}
    run_sft(run, SFTConfig.from_dict(cfg), model="tiny", progress=False)
    ck = run.path/"sft"/"checkpoints"
    assert [x.name for x in ck.glob("checkpoint-*")] == ["checkpoint-4"]          # keep_last=1, kept when asked
    assert read_json(ck/"checkpoint-4"/"fingerprint.json")["step"] == 4
    run_sft(run, SFTConfig.from_dict({**cfg, "learning_rate": 1e-3}), model="tiny", progress=False)
    out = capsys.readouterr().out
    assert "another configuration" in out and "resuming" not in out                # a different lr does not resume
    assert len(losses(run)) == 4


# --- the same kill-and-resume for DPO and the reward model (issue 16 §1): killed right after checkpoint-4 of 6 steps
KILL_STAGE_AT_4 = textwrap.dedent("""
    import json, os, signal, sys
    import cai_workbench.core.checkpoints as C
    from cai_workbench.core.run import Run
    orig = C.CheckpointGuard.on_save
    def on_save(self, args, state, control, **kw):
        orig(self, args, state, control, **kw)
        if state.global_step == 4: os.kill(os.getpid(), signal.SIGKILL)
    C.CheckpointGuard.on_save = on_save
    run, stage, cfg = Run(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    if stage == "dpo":
        from cai_workbench.stages.dpo import DPOConfig, run_dpo
        run_dpo(run, DPOConfig.from_dict(cfg), model="tiny", progress=False)
    elif stage in ("rloo", "grpo"):
        from cai_workbench.stages import rloo_grpo as R
        Cfg, runner = {"rloo": (R.RLOOConfig, R.run_rloo), "grpo": (R.GRPOConfig, R.run_grpo)}[stage]
        runner(run, Cfg.from_dict(cfg), model="tiny", prompts=["Explain how to bake bread.", "Write a poem.", "How do I stay safe online?", "Plan a trip."])
    else:
        from cai_workbench.stages.reward_model import RewardModelConfig, run_reward_model
        run_reward_model(run, RewardModelConfig.from_dict(cfg), model="tiny")
""")
NO_DUPS = {"exact_duplicates": False, "near_duplicates": False}
STAGES = {
    "dpo": dict(max_steps=6, batch_size=2, learning_rate=5e-3, start_from="base", lora={"r": 4, "alpha": 8, "dropout": 0.0},
                save_every=2, keep_last=2, filters=NO_DUPS),
    "reward_model": dict(max_steps=6, batch_size=2, learning_rate=1e-2, min_pairs=4, eval_fraction=0.0, human_pairs=None, device="cpu",
                         lora={"r": 4, "alpha": 8, "dropout": 0.0}, save_every=2, keep_last=2, filters=NO_DUPS),
}
TOPICS = ["bread", "a poem", "a bug", "a trip", "weapons", "drugs", "hacking", "the sea"]


def pairs_run(path) -> Run:
    run = Run.create(path, seed=0)
    rows = [dict(id=str(i), prompt=f"Tell me about {t}.", chosen=f"Here is a short, careful note about {t}.",
                 rejected=f"{t} {t} {t}!!!", source="ai", label="a", soft_label=0.9, label_source="ai") for i, t in enumerate(TOPICS)]
    (run.stage_dir("preferences")/"pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def stage_losses(run, stage):
    m = read_json(run.path/stage/"metrics.json")
    return [h["loss"] for h in m["log_history"] if "loss" in h] if stage == "dpo" else m["loss_curve"]


@pytest.mark.parametrize("stage", ["dpo", "reward_model"])
def test_sigkilled_dpo_and_reward_model_resume_with_the_same_losses(tmp_path, stage):
    cfg = STAGES[stage]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run_once = lambda run: subprocess.run([sys.executable, "-c", KILL_STAGE_AT_4.replace("os.kill(", "(lambda *a: None)(") , str(run.path), stage,
                                           json.dumps(cfg)], env=env, capture_output=True, text=True, timeout=900)
    full = pairs_run(tmp_path/"full")
    p = run_once(full); assert p.returncode == 0, p.stderr[-2000:]       # uninterrupted, in a process of its own like the killed one
    assert not (full.path/stage/"checkpoints").exists()

    run = pairs_run(tmp_path/"killed")
    p = subprocess.run([sys.executable, "-c", KILL_STAGE_AT_4, str(run.path), stage, json.dumps(cfg)], env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    ck = run.path/stage/"checkpoints"
    assert sorted(x.name for x in ck.iterdir() if x.name.startswith("checkpoint-")) == ["checkpoint-2", "checkpoint-4"]
    assert run.stage_info(stage)["status"] == "running"
    p = run_once(run); assert p.returncode == 0, p.stderr[-2000:]
    assert f"resuming from {ck/'checkpoint-4'}" in p.stdout + p.stderr
    got, want = stage_losses(run, stage), stage_losses(full, stage)
    assert len(got) == len(want) == 6
    assert got == pytest.approx(want, abs=1e-4), (got, want)            # steps 5-6 after the resume equal the uninterrupted run's
    assert run.is_done(stage) and not ck.exists()


RL = dict(max_steps=6, batch_size=4, num_generations=2, generation={"max_new_tokens": 6}, learning_rate=1e-3, device="cpu",
          lora={"r": 4, "alpha": 8, "dropout": 0.0}, save_every=2, keep_last=2)


@pytest.mark.parametrize("stage", ["rloo", "grpo"])
def test_sigkilled_rloo_and_grpo_resume_with_the_same_steps(tmp_path, stage):
    "Killed by SIGKILL right after checkpoint-4 of 6: the rerun resumes there and steps 5-6 equal the uninterrupted run's."
    from cai_workbench.feedback.reward_scoring import random_reward_adapter
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    go = lambda run, script: subprocess.run([sys.executable, "-c", script, str(run.path), stage, json.dumps(RL)], env=env,
                                            capture_output=True, text=True, timeout=900)
    def rl_run(path):
        run = Run.create(path, seed=0); random_reward_adapter(run.stage_dir("reward_model")/"adapter", base="tiny"); return run
    rows = lambda run: [(r["step"], r["reward_mean"], r["kl"]) for r in map(json.loads, (run.path/stage/"metrics.jsonl").read_text().splitlines())]
    full = rl_run(tmp_path/"full")
    p = go(full, KILL_STAGE_AT_4.replace("os.kill(", "(lambda *a: None)(")); assert p.returncode == 0, p.stderr[-2000:]
    run = rl_run(tmp_path/"killed")
    p = go(run, KILL_STAGE_AT_4); assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    ck = run.path/stage/"checkpoints"
    assert sorted(x.name for x in ck.iterdir() if x.name.startswith("checkpoint-")) == ["checkpoint-2", "checkpoint-4"]
    p = go(run, KILL_STAGE_AT_4.replace("os.kill(", "(lambda *a: None)(")); assert p.returncode == 0, p.stderr[-2000:]
    assert f"resuming from {ck/'checkpoint-4'}" in p.stdout + p.stderr
    got, want = rows(run), rows(full)
    assert [r[0] for r in got] == [r[0] for r in want] == [1, 2, 3, 4, 5, 6]
    assert [x for r in got for x in r[1:]] == pytest.approx([x for r in want for x in r[1:]], abs=1e-4), (got, want)
    assert run.is_done(stage) and not ck.exists()
