"RLOO and GRPO stages (TRL trainers) on the tiny model with a reward adapter in the run."
import json

import pytest

from cai_workbench.core.run import Run
from cai_workbench.engine.models import LoraSpec, load_model
from cai_workbench.feedback.reward_scoring import random_reward_adapter
from cai_workbench.stages.rloo_grpo import GRPOConfig, RLDivergedError, RLOOConfig, compare_rl, run_grpo, run_rloo

PROMPTS = ["Please explain how to bake bread.", "Write a poem.", "How do I stay safe online?", "Plan a trip."]
SMALL = dict(max_steps=2, batch_size=4, num_generations=2, generation={"max_new_tokens": 6}, learning_rate=1e-3,
             lora=LoraSpec(r=4, alpha=8, dropout=0.0), device="cpu")


@pytest.fixture(scope="module")
def run_with_rm(tmp_path_factory):
    run = Run.create(tmp_path_factory.mktemp("rl")/"run", seed=0)
    random_reward_adapter(run.stage_dir("reward_model")/"adapter", base="tiny")
    return run


@pytest.mark.parametrize("method", ["rloo", "grpo"])
def test_few_steps_write_the_run_directory(run_with_rm, method):
    runner, Cfg = {"rloo": (run_rloo, RLOOConfig), "grpo": (run_grpo, GRPOConfig)}[method]
    res = runner(run_with_rm, Cfg(**SMALL), model="tiny", prompts=PROMPTS)
    d = run_with_rm.path/method
    assert sorted(p.name for p in d.iterdir()) == ["adapter", "curves.png", "metrics.json", "metrics.jsonl", "prompts.jsonl"]
    rows = [json.loads(l) for l in (d/"metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert {"step", "reward_mean", "kl", "entropy", "response_len", "loss"} <= set(r)
        assert r["kl"] is not None and r["kl"] >= 0 and r["response_len"] <= SMALL["generation"]["max_new_tokens"]
    summary = json.loads((d/"metrics.json").read_text())
    assert summary["method"] == method and summary["updates"] == 2 and summary["peak_mem_mb"] > 0
    assert summary["final_reward"] == pytest.approx(res.summary()["final_reward"])
    assert run_with_rm.is_done(method)
    policy, _ = load_model(d/"adapter", device="cpu")
    assert set(policy.peft_config) == {"default"}          # TRL's frozen "ref" copy is not saved
    # the reward function is our reward model: rewards are real numbers that vary across completions
    assert any(r["reward_std"] and r["reward_std"] > 0 for r in rows)


def test_compare_rl_table(run_with_rm):
    for runner, Cfg in ((run_rloo, RLOOConfig), (run_grpo, GRPOConfig)):
        runner(run_with_rm, Cfg(**SMALL), model="tiny", prompts=PROMPTS)     # reused when already done
    # a PPO summary in the same keys (as ppo/ writes it) joins the table
    (run_with_rm.stage_dir("ppo")/"metrics.json").write_text(json.dumps(
        {"method": "ppo", "updates": 3, "first_reward": 0.0, "final_reward": 0.5, "final_kl": 0.1, "wall_s": 1.0, "peak_mem_mb": 10.0}))
    cmp = compare_rl(run_with_rm)
    assert [r["method"] for r in cmp.rows] == ["ppo", "rloo", "grpo"]
    assert all(r["wall_s"] is not None and r["peak_mem_mb"] for r in cmp.rows)
    assert "| ppo | 3 |" in cmp._repr_markdown_()


def test_starts_from_sft_adapter(tmp_path):
    from cai_workbench.engine.models import save_adapter
    run = Run.create(tmp_path/"run", seed=0)
    random_reward_adapter(run.stage_dir("reward_model")/"adapter", base="tiny")
    sft, tok = load_model("tiny", purpose="train", device="cpu", dtype="float32", lora=LoraSpec(r=2, alpha=4, dropout=0.0))
    save_adapter(sft, run.stage_dir("sft")/"adapter", base_model="tiny", tokenizer=tok)
    res = run_grpo(run, GRPOConfig(**{**SMALL, "max_steps": 1}), model="tiny", prompts=PROMPTS)
    info = json.loads((res.dir/"adapter"/"cai_workbench.json").read_text())
    assert info["started_from"].endswith("sft/adapter")
    assert json.loads((res.dir/"adapter"/"adapter_config.json").read_text())["r"] == 2   # the SFT adapter was trained on
    with pytest.raises(ValueError, match="trained on base 'tiny' but the grpo stage got model='embedded'.*start_from: base"):
        run_grpo(run, GRPOConfig(**SMALL), model="embedded", prompts=PROMPTS)


def test_bad_input_fails_before_any_work(tmp_path):
    run = Run.create(tmp_path/"run", seed=0)
    with pytest.raises(Exception, match="run reward_model first"):
        run_rloo(run, RLOOConfig(**SMALL), model="tiny", prompts=PROMPTS)
    random_reward_adapter(run.stage_dir("reward_model")/"adapter", base="tiny")
    with pytest.raises(ValueError, match="gave 1 prompts"):
        run_grpo(run, GRPOConfig(**SMALL), model="tiny", prompts=PROMPTS[:1])
    with pytest.raises(ValueError, match="multiple of num_generations"):
        GRPOConfig(batch_size=6, num_generations=4)
    assert not (run.path/"rloo").exists() and not (run.path/"grpo").exists()


def test_divergence_stops_with_a_message(tmp_path):
    run = Run.create(tmp_path/"run", seed=0)
    nan_reward = lambda prompts, completions, **kw: [float("inf")]*len(prompts)
    with pytest.raises(RLDivergedError, match="diverged"):
        run_rloo(run, RLOOConfig(**{**SMALL, "max_steps": 1}), model="tiny", prompts=PROMPTS, reward_fn=nan_reward)
    assert not (run.path/"rloo"/"adapter").exists()
    assert run.manifest["stages"]["rloo"]["status"] == "failed"


class _Killed(Exception): "Stands in for a kill right after a checkpoint was written."


def test_resumed_run_keeps_the_metrics_rows_before_the_resume(tmp_path, monkeypatch):
    "RLOO and GRPO share the metrics callback; RLOO stands for both (GRPO's resume costs the same minutes)."
    import cai_workbench.core.checkpoints as C
    method, runner, Cfg = "rloo", run_rloo, RLOOConfig
    cfg = Cfg(**{**SMALL, "max_steps": 3, "save_every": 1, "keep_last": 1})
    full = Run.create(tmp_path/"full", seed=0)
    random_reward_adapter(full.stage_dir("reward_model")/"adapter", base="tiny")
    runner(full, cfg, model="tiny", prompts=PROMPTS)
    run = Run.create(tmp_path/"killed", seed=0)
    random_reward_adapter(run.stage_dir("reward_model")/"adapter", base="tiny")
    orig = C.CheckpointGuard.on_save
    def on_save(self, args, state, control, **kw):
        orig(self, args, state, control, **kw)
        if state.global_step == 2: raise _Killed()
    monkeypatch.setattr(C.CheckpointGuard, "on_save", on_save)
    with pytest.raises(_Killed): runner(run, cfg, model="tiny", prompts=PROMPTS)
    monkeypatch.setattr(C.CheckpointGuard, "on_save", orig)
    res = runner(run, cfg, model="tiny", prompts=PROMPTS)                   # resumes from checkpoint-2
    rows = [json.loads(l) for l in (run.path/method/"metrics.jsonl").read_text().splitlines()]
    want = [json.loads(l) for l in (full.path/method/"metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and [r["step"] for r in res.metrics] == [1, 2, 3]
    assert [r["reward_mean"] for r in rows[:2]] == pytest.approx([r["reward_mean"] for r in want[:2]], abs=1e-4)   # the rows before the kill
    assert all(r["wall_s"] is not None for r in rows)                    # a pre-resume row keeps its measured time
    assert json.loads((run.path/method/"metrics.json").read_text())["updates"] == 3


@pytest.mark.parametrize("method", ["rloo", "grpo"])
def test_the_step_after_a_resume_equals_the_uninterrupted_run(tmp_path, monkeypatch, method):
    "Before epoch_seeded, TRL's sampler replayed epoch 0's prompt order after a resume (tiny model: reward 0.4715 vs 0.5711)."
    import cai_workbench.core.checkpoints as C
    runner, Cfg = {"rloo": (run_rloo, RLOOConfig), "grpo": (run_grpo, GRPOConfig)}[method]
    cfg = Cfg(**{**SMALL, "max_steps": 3, "save_every": 1, "keep_last": 1})
    runs = {}
    for name in ("full", "killed"):
        runs[name] = Run.create(tmp_path/name, seed=0); random_reward_adapter(runs[name].stage_dir("reward_model")/"adapter", base="tiny")
    runner(runs["full"], cfg, model="tiny", prompts=PROMPTS)
    orig = C.CheckpointGuard.on_save
    def on_save(self, args, state, control, **kw):
        orig(self, args, state, control, **kw)
        if state.global_step == 2: raise _Killed()
    monkeypatch.setattr(C.CheckpointGuard, "on_save", on_save)
    with pytest.raises(_Killed): runner(runs["killed"], cfg, model="tiny", prompts=PROMPTS)
    monkeypatch.setattr(C.CheckpointGuard, "on_save", orig)
    runner(runs["killed"], cfg, model="tiny", prompts=PROMPTS)
    got, want = ([json.loads(l) for l in (runs[n].path/method/"metrics.jsonl").read_text().splitlines()] for n in ("killed", "full"))
    assert got[2]["reward_mean"] == pytest.approx(want[2]["reward_mean"], abs=1e-4)
    assert got[2]["kl"] == pytest.approx(want[2]["kl"], abs=1e-5)
