"PPO (ours): GAE, the clipped losses, KL/ratio at init, learning a toy reward, checkpoint/resume, the NaN guard."
import json, math, os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cai_workbench.core.config import ConfigError
from cai_workbench.core.run import MissingStageError, Run
from cai_workbench.core.io import read_json
from cai_workbench.engine.generator import Generator
from cai_workbench.engine.models import LoraSpec, load_model, save_adapter
from cai_workbench.engine.embedded import tiny_model
from cai_workbench.rl.ppo import PPOConfig, PPODivergedError, build_ppo_model, collect_rollouts, gae, masked_whiten, policy_loss, value_loss
from cai_workbench.stages.ppo import _reward_plan, run_ppo, toy_config, word_count_reward

PROMPTS = [f"Tell me about item {i}." for i in range(32)]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    "The tiny model's ops are too small to gain from threads; on a busy 2-core box two threads mostly wait on each other."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_gae_hand_computed():
    # gamma=0.5, lam=1 (plain discounted returns minus values), then lam=0 (one-step TD errors)
    r = torch.tensor([[1.0, 2.0, 4.0, 0.0]]); v = torch.tensor([[1.0, 1.0, 1.0, 7.0]]); m = torch.tensor([[1, 1, 1, 0]])
    adv, ret = gae(r, v, m, gamma=0.5, lam=1.0)
    G = [1 + 0.5 * 2 + 0.25 * 4, 2 + 0.5 * 4, 4.0]                  # discounted returns; the padded value 7 is ignored
    assert torch.allclose(ret[0, :3], torch.tensor(G)) and ret[0, 3] == 0
    assert torch.allclose(adv[0, :3], torch.tensor(G) - 1)
    adv0, _ = gae(r, v, m, gamma=0.5, lam=0.0)
    assert torch.allclose(adv0[0, :3], torch.tensor([1 + 0.5 * 1 - 1, 2 + 0.5 * 1 - 1, 4 + 0 - 1.0]))


def test_whiten_ignores_padding():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]]); m = torch.tensor([[1, 1, 1, 0]])
    w = masked_whiten(x, m)
    assert torch.allclose(w[0, :3], torch.tensor([-1.0, 0.0, 1.0]), atol=1e-4) and w[0, 3] == 0


def test_policy_loss_clipping_hand_values():
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]]); m = torch.ones(1, 4)
    ratio = torch.tensor([[1.5, 0.5, 0.5, 1.5]])
    loss, clipfrac, approx_kl, r = policy_loss(ratio.log(), torch.zeros(1, 4), adv, m, clip_range=0.2)
    # A>0: min(1.5, 1.2)=1.2 -> -1.2; min(0.5, 0.8)=0.5 -> -0.5; A<0: max(0.5, 0.8)=0.8 -> +0.8; 1.5 unclipped -> +1.5
    assert math.isclose(loss.item(), (-1.2 - 0.5 + 0.8 + 1.5) / 4, rel_tol=1e-6)
    assert clipfrac.item() == 1.0 and torch.allclose(r, ratio)
    assert math.isclose(approx_kl.item(), float(((ratio - 1) - ratio.log()).mean()), rel_tol=1e-6)
    # gradient flows only through the unclipped terms: positions 1 (A>0, r<1-eps) and 3 (A<0, r>1+eps)
    lp = ratio.log().clone().requires_grad_(True)
    policy_loss(lp, torch.zeros(1, 4), adv, m, 0.2)[0].backward()
    assert lp.grad[0, 0] == 0 and lp.grad[0, 2] == 0 and lp.grad[0, 1] != 0 and lp.grad[0, 3] != 0


def test_value_loss_clipping_hand_values():
    old = torch.zeros(1, 3); m = torch.ones(1, 3)
    v = torch.tensor([[1.0, -1.0, 0.1]]); ret = torch.tensor([[1.0, 0.0, 1.0]])
    loss, clipfrac = value_loss(v, old, ret, m, clip_range_value=0.2)
    # (1) v=1 clipped to 0.2: max(0, 0.64); (2) v=-1 clipped to -0.2: max(1, 0.04)=1; (3) inside: 0.81
    assert math.isclose(loss.item(), 0.5 * (0.64 + 1.0 + 0.81) / 3, rel_tol=1e-6)
    assert math.isclose(clipfrac.item(), 1 / 3, rel_tol=1e-6)


@pytest.mark.parametrize("value_model", ["adapter", "shared"])
def test_kl_zero_and_ratio_one_at_init(value_model):
    base, tok = load_model("tiny", device="cpu", purpose="train")
    cfg = PPOConfig(batch_size=4, minibatch_size=4, generation={"max_new_tokens": 6}, value_model=value_model,
                    lora=LoraSpec(r=4, alpha=8, dropout=0.0), value_lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    pv = build_ppo_model(base, cfg)
    gen = Generator(pv.peft, tok, batch_size=4, progress=False)
    ro = collect_rollouts(pv, gen, PROMPTS[:4], word_count_reward("e"), cfg, kl_coef=0.1, seed=0)
    assert ro.ids.shape[1] == ro.Q + ro.mask.shape[1] and ro.mask.sum() > 0
    assert torch.allclose(ro.logprobs * ro.mask, ro.ref_logprobs * ro.mask, atol=1e-5)
    assert ro.kl.abs().max().item() < 1e-4
    new_lp, _, _ = pv(ro.ids, ro.attn, ro.Q)
    _, clipfrac, approx_kl, ratio = policy_loss(new_lp, ro.logprobs, ro.advantages, ro.mask)
    assert torch.allclose(ratio[ro.mask.bool()], torch.ones(int(ro.mask.sum())), atol=1e-5)
    assert clipfrac.item() == 0 and abs(approx_kl.item()) < 1e-6


def test_rollouts_leave_the_engine_holding_nothing_for_the_update():
    from cai_workbench.engine.cpu_kernels import onednn_linear_available
    base, tok = tiny_model(hidden_size=256)                      # wide enough that its linear layers are packed
    cfg = PPOConfig(batch_size=4, minibatch_size=4, generation={"max_new_tokens": 6}, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    pv = build_ppo_model(base, cfg)
    gen = Generator(pv.peft, tok, batch_size=4, progress=False)
    gen.generate(PROMPTS[:4], max_new_tokens=6)
    assert gen.backend.kept.rows                                 # a plain call keeps its rows' keys/values for the next one
    assert gen.backend.packed._packed or not onednn_linear_available()   # and its packed weights
    collect_rollouts(pv, gen, PROMPTS[:4], word_count_reward("e"), cfg, kl_coef=0.1, seed=0)
    assert gen.backend.kept.rows == [] and gen.backend.packed._packed == {}   # the update gets that memory


def test_sft_adapter_is_policy_start_and_reference(tmp_path):
    "With an SFT adapter, policy and reference both start from it (KL 0) and differ from the bare base."
    m, tok = load_model("tiny", device="cpu", purpose="train",
                        lora=LoraSpec(r=4, alpha=8, dropout=0.0).to_dict())
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n: p.normal_(0, 0.5)
    save_adapter(m, tmp_path/"sft", base_model="tiny", tokenizer=tok)
    base, tok = load_model("tiny", device="cpu", purpose="train")
    cfg = PPOConfig(batch_size=4, minibatch_size=4, generation={"max_new_tokens": 6})
    pv = build_ppo_model(base, cfg, sft_adapter=tmp_path/"sft")
    assert pv.has_reference_adapter
    ro = collect_rollouts(pv, Generator(pv.peft, tok, progress=False), PROMPTS[:4], word_count_reward("e"), cfg, 0.1, seed=0)
    assert ro.kl.abs().max().item() < 1e-4
    with pv.peft.disable_adapter():
        bare = pv.trunk(input_ids=ro.ids, attention_mask=ro.attn).last_hidden_state
    pv.use("policy")
    assert not torch.allclose(bare, pv._hidden(ro.ids, ro.attn), atol=1e-3)


def test_toy_reward_rises(tmp_path):
    run = Run.create(tmp_path/"toy", seed=0)
    res = run_ppo(run, toy_config(), model="tiny", reward_fn=word_count_reward("e"), prompts=PROMPTS, progress=False)
    rewards = [m["reward_mean"] for m in res.metrics]
    assert len(rewards) == 20
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 3, rewards
    assert res.metrics[-1]["kl"] > res.metrics[0]["kl"]                     # it moved away from the reference to get there
    s = res.summary()
    assert set(s) >= {"final_reward", "final_kl", "wall_s", "peak_mem_mb"} and s["peak_mem_mb"] > 0
    assert (run.path/"ppo"/"curves.png").stat().st_size > 1000
    m, _ = load_model(run.path/"ppo"/"adapter", device="cpu")               # an ordinary PEFT adapter folder
    assert type(m).__name__ == "PeftModelForCausalLM"


def _params(run):
    return load_file(str(run.path/"ppo"/"adapter"/"adapter_model.safetensors"))


def test_checkpoint_resume_gives_the_same_next_update(tmp_path):
    cfg = toy_config(total_updates=3, save_every=1, batch_size=8, minibatch_size=4, keep_checkpoints=True)   # a finished stage resumes
    straight = Run.create(tmp_path/"a", seed=1)
    ra = run_ppo(straight, cfg, model="tiny", reward_fn=word_count_reward("e"), prompts=PROMPTS, progress=False)
    resumed = Run.create(tmp_path/"b", seed=1)
    run_ppo(resumed, cfg.replace(total_updates=2), model="tiny", reward_fn=word_count_reward("e"), prompts=PROMPTS, progress=False)
    rb = run_ppo(resumed, cfg, model="tiny", reward_fn=word_count_reward("e"), prompts=PROMPTS, progress=False)
    assert rb.resumed_from == 2 and [m["update"] for m in rb.metrics] == [0, 1, 2]
    for k in ("reward_mean", "kl", "policy_loss", "value_loss", "approx_kl", "kl_coef"):
        assert math.isclose(ra.metrics[2][k], rb.metrics[2][k], rel_tol=1e-5, abs_tol=1e-7), k
    pa, pb = _params(straight), _params(resumed)
    assert pa.keys() == pb.keys() and all(torch.allclose(pa[k], pb[k], atol=1e-6) for k in pa)
    # a changed structural setting is refused, naming it
    with pytest.raises(ConfigError, match="value_model"):
        run_ppo(resumed, cfg.replace(total_updates=4, value_model="adapter"), model="tiny",
                reward_fn=word_count_reward("e"), prompts=PROMPTS, progress=False)


def test_nan_guard_stops_and_keeps_last_checkpoint(tmp_path):
    calls = []
    def exploding(prompts, responses):
        calls.append(1)
        return [1e30 if len(calls) >= 3 else 1.0 for _ in responses]          # update 2 gets an absurd reward scale
    run = Run.create(tmp_path/"nan", seed=0)
    cfg = toy_config(total_updates=5, save_every=1, batch_size=8, minibatch_size=4)
    with pytest.raises(PPODivergedError, match=r"ppo update 2: non-finite .* last good checkpoint .*checkpoints/checkpoint-2 was kept"):
        run_ppo(run, cfg, model="tiny", reward_fn=exploding, prompts=PROMPTS, progress=False)
    ck = run.path/"ppo"/"checkpoints"/"checkpoint-2"                         # the newest, named in the error
    assert sorted(p.name for p in ck.parent.iterdir()) == ["checkpoint-1", "checkpoint-2"]
    state = json.loads((ck/"state.json").read_text())
    tensors = load_file(str(ck/"tensors.safetensors"))
    assert state["update"] == 2 and all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("adapter/"))
    assert run.stage_info("ppo")["status"] == "failed" and not (run.path/"ppo"/"adapter").exists()
    # the killed run resumes from the last good update with a sane reward
    res = run_ppo(run, cfg, model="tiny", reward_fn=word_count_reward("e"), prompts=PROMPTS, progress=False)
    assert res.resumed_from == 2 and [m["update"] for m in res.metrics] == [0, 1, 2, 3, 4] and run.is_done("ppo")


def test_non_finite_reward_is_named(tmp_path):
    run = Run.create(tmp_path/"r", seed=0)
    with pytest.raises(FloatingPointError, match="non-finite score"):
        run_ppo(run, toy_config(total_updates=1, batch_size=4, minibatch_size=4), model="tiny",
                reward_fn=lambda p, r: [float("nan")] * len(r), prompts=PROMPTS, progress=False)


def test_bad_input_stops_before_work(tmp_path):
    run = Run.create(tmp_path/"bad", seed=0)
    with pytest.raises(ValueError, match="at least batch_size=16 prompts"):
        run_ppo(run, toy_config(), model="tiny", reward_fn=word_count_reward("e"), prompts=PROMPTS[:3])
    with pytest.raises(MissingStageError, match="run reward_model first"):
        run_ppo(run, toy_config(), model="tiny", prompts=PROMPTS)
    with pytest.raises(ConfigError, match="learning_rate"):
        PPOConfig.from_dict({"learning_rate": 1.0})
    with pytest.raises(ConfigError, match="max_kl"):
        PPOConfig(target_kl=10, max_kl=5)
    assert not (run.path/"ppo").exists()


def test_kl_divergence_stops(tmp_path):
    "A KL past max_kl stops the run with the reason (here forced by a tiny max_kl and a fast learner)."
    run = Run.create(tmp_path/"kl", seed=0)
    cfg = toy_config(total_updates=20, target_kl=0.05, max_kl=0.5, init_kl_coef=0.0)
    with pytest.raises(PPODivergedError, match=r"KL to the reference is .* > max_kl=0.5"):
        run_ppo(run, cfg, model="tiny", reward_fn=word_count_reward("e"), prompts=PROMPTS, progress=False)


def test_reward_model_tokenizer_mismatch(tmp_path):
    from cai_workbench.feedback.reward_scoring import random_reward_adapter
    from cai_workbench.engine.models import load_tokenizer
    run = Run.create(tmp_path/"tm", seed=0)
    ad = random_reward_adapter(run.path/"reward_model"/"adapter", base="tiny")
    tok = load_tokenizer(ad); tok.add_tokens(["<extra_token>"]); tok.save_pretrained(ad)   # a different vocabulary
    policy_tok = load_tokenizer("tiny")
    assert _reward_plan(run, toy_config(), "tiny", policy_tok)[1] == "separate"          # auto: its own model
    with pytest.raises(ConfigError, match="different tokenizer"):
        _reward_plan(run, toy_config(reward_placement="shared"), "tiny", policy_tok)


def _sampling_spy(monkeypatch):
    "Record every distribution HF's sampler draws from (torch.multinomial's probs) and the token it drew."
    calls, real = [], torch.multinomial
    def spy(probs, num_samples, *a, **kw):
        out = real(probs, num_samples, *a, **kw)
        calls.append((probs.detach().clone(), out.detach().clone()))
        return out
    monkeypatch.setattr(torch, "multinomial", spy)
    return calls


@pytest.mark.parametrize("gen_kw", [dict(repetition_penalty=1.8, top_k=5), dict(no_repeat_ngram_size=1, min_new_tokens=3)])
def test_rollouts_sample_the_distribution_they_score(monkeypatch, gen_kw):
    "The probability the sampler drew each token with equals exp(stored log-prob): nothing in the model's generation_config leaks in."
    base, tok = load_model("tiny", device="cpu", purpose="train")
    for k, v in gen_kw.items(): setattr(base.generation_config, k, v)     # what a hub checkpoint's generation_config may add
    cfg = PPOConfig(batch_size=4, minibatch_size=4, generation={"max_new_tokens": 8, "temperature": 0.7}, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    pv = build_ppo_model(base, cfg)
    with torch.no_grad():                                   # a policy that is not the base, so the scoring path is exercised
        for n, p in pv.peft.named_parameters():
            if "lora_B" in n: p.normal_(0, 0.3)
    gen = Generator(pv.peft, tok, batch_size=4, progress=False)
    calls = _sampling_spy(monkeypatch)
    ro = collect_rollouts(pv, gen, PROMPTS[:4], word_count_reward("e"), cfg, kl_coef=0.1, seed=0)
    monkeypatch.undo()
    enc = gen.encode(PROMPTS[:4]); order = sorted(range(4), key=lambda i: -len(enc[i]))   # the Generator's batch order
    assert len(calls) >= 1
    for step, (probs, drawn) in enumerate(calls):
        for row, i in enumerate(order):
            if step >= ro.mask.shape[1] or not ro.mask[i, step]: continue
            tok_id = ro.ids[i, ro.Q + step].item()
            assert drawn[row, 0].item() == tok_id
            assert math.isclose(probs[row, tok_id].item(), ro.logprobs[i, step].exp().item(), rel_tol=1e-3, abs_tol=1e-6), (step, i)
    assert all(getattr(base.generation_config, k) == v for k, v in gen_kw.items())   # the model's own settings are restored


def test_ppo_rejects_nucleus_sampling():
    with pytest.raises(ConfigError, match="top_p=0.5.*use top_p=1.0"):
        PPOConfig(generation={"top_p": 0.5})
    with pytest.raises(ConfigError, match="top_p=0.5.*off-policy"):
        PPOConfig(generation={"top_p": 0.5, "exact": False})
    from cai_workbench.engine.generator import GenerationConfig
    with pytest.raises(ConfigError, match="top_p"):
        GenerationConfig(temperature=1.0, top_p=0.9, exact=True)


def test_malicious_pickle_checkpoint_is_refused_not_run(tmp_path):
    "A pickled checkpoint.pt (old format, or planted in a shared bucket) is never unpickled: no code runs."
    import pickle
    marker = tmp_path/"pwned"
    class Evil:
        def __reduce__(self): return (os.system, (f"touch {marker}",))
    run = Run.create(tmp_path/"r", seed=0)
    (run.path/"ppo").mkdir()
    (run.path/"ppo"/"checkpoint.pt").write_bytes(pickle.dumps({"update": 1, "x": Evil()}))
    with pytest.raises(ConfigError, match=r"checkpoint.pt: a pickled checkpoint .* not loaded, because unpickling can run code"):
        run_ppo(run, toy_config(total_updates=1, batch_size=4, minibatch_size=4), model="tiny",
                reward_fn=word_count_reward("e"), prompts=PROMPTS, progress=False)
    assert not marker.exists()
    assert run.stage_info("ppo")["status"] == "failed"
    import cai_workbench, pathlib                               # nothing in the package unpickles
    src = "\n".join(p.read_text() for p in pathlib.Path(cai_workbench.__file__).parent.glob("*.py"))
    assert "weights_only=False" not in src and "pickle.load" not in src and "allow_pickle=True" not in src


def test_checkpoint_resumes_only_with_the_same_config_and_inputs(tmp_path):
    "A changed learning rate (or reward) does not silently resume an old checkpoint; raising total_updates does."
    cfg = toy_config(total_updates=2, save_every=1, batch_size=4, minibatch_size=4, keep_checkpoints=True)
    run = Run.create(tmp_path/"r", seed=0)
    run_ppo(run, cfg, model="tiny", reward_fn=word_count_reward("e"), prompts=PROMPTS, progress=False)
    with pytest.raises(ConfigError, match=r"other settings or inputs \(learning_rate was 0.005, now 0.001\).*start over \(--force"):
        run_ppo(run, cfg.replace(learning_rate=1e-3), model="tiny", reward_fn=word_count_reward("e"), prompts=PROMPTS, progress=False)
    with pytest.raises(ConfigError, match=r"\(prompts changed\)"):
        run_ppo(run, cfg, model="tiny", reward_fn=word_count_reward("e"), prompts=PROMPTS[::-1], progress=False)
    res = run_ppo(run, cfg.replace(total_updates=3), model="tiny", reward_fn=word_count_reward("e"), prompts=PROMPTS, progress=False)
    assert res.resumed_from == 2 and len(res.metrics) == 3


def test_adaptive_kl_moves_beta_towards_the_target():
    from cai_workbench.rl.ppo import AdaptiveKLController
    kc = AdaptiveKLController(0.1, target=6.0, horizon=100)
    assert kc.update(12.0, 10) == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))     # KL above target: β up (error clipped at +20 %)
    assert kc.update(6.0, 10) == pytest.approx(0.102)                            # on target: unchanged
    assert kc.update(3.0, 10) < 0.102                                            # below target: β down
    assert AdaptiveKLController(0.1, adaptive=False).update(100.0, 8) == 0.1    # fixed β stays fixed


def test_kl_horizon_scales_with_the_run():
    "With the default horizon β moves up to 2% per update whatever the batch size; a fixed 10,000-rollout horizon barely moves it."
    from cai_workbench.rl.ppo import AdaptiveKLController
    def trajectory(cfg, kl):
        kc = AdaptiveKLController.for_config(cfg)
        return [kc.update(kl, cfg.batch_size) for _ in range(cfg.total_updates)]
    cfg = PPOConfig(total_updates=20, batch_size=8)
    assert AdaptiveKLController.for_config(cfg).horizon == 80
    assert trajectory(cfg, kl=30.0)[-1] == pytest.approx(cfg.init_kl_coef * 1.02**20)   # far above target all run: β x1.49
    assert trajectory(cfg, kl=0.5)[-1] == pytest.approx(cfg.init_kl_coef * 0.98**20)    # far below: x0.67
    assert trajectory(cfg.replace(batch_size=64, minibatch_size=4), kl=30.0)[-1] == pytest.approx(cfg.init_kl_coef * 1.02**20)
    fixed = trajectory(cfg.replace(kl_horizon=10000), kl=30.0)[-1]
    assert abs(fixed / cfg.init_kl_coef - 1) < 0.004
    with pytest.raises(ConfigError, match="kl_horizon"):
        PPOConfig(kl_horizon=0)


class _Killed(Exception): "Stands in for a kill between two updates (after the last one's checkpoint was written)."


def test_ppo_checkpoints_like_the_trl_stages(tmp_path, monkeypatch):
    "Issue 16: PPO's checkpoints use the TRL stages' names: `checkpoints/checkpoint-N`, `keep_last`, `keep_checkpoints`, `save_every: 0`."
    import shutil
    import cai_workbench.stages.ppo as R
    small = dict(batch_size=4, minibatch_size=4, ppo_epochs=1, generation={"max_new_tokens": 4}, save_every=1, keep_last=2)
    cfg = toy_config(total_updates=5, **small)
    names = lambda run: sorted(p.name for p in (run.path/"ppo"/"checkpoints").glob("checkpoint-*"))
    go = lambda run, cfg: run_ppo(run, cfg, model="tiny", reward_fn=word_count_reward("e"), prompts=PROMPTS, progress=False)
    run, seen = Run.create(tmp_path/"killed", seed=0), {}
    orig = R._ppo_update_k
    def update_k(k, *a, **kw):
        seen[k] = names(run)
        if k == 3: raise _Killed()                                     # killed after update 3 (checkpoint-3 written)
        return orig(k, *a, **kw)
    monkeypatch.setattr(R, "_ppo_update_k", update_k)
    with pytest.raises(_Killed): go(run, cfg)
    monkeypatch.setattr(R, "_ppo_update_k", orig)
    assert seen[2] == ["checkpoint-1", "checkpoint-2"] and seen[3] == ["checkpoint-2", "checkpoint-3"]   # keep_last=2
    assert not (run.path/"ppo"/"checkpoint").exists()
    res = go(run, cfg)
    assert res.resumed_from == 3 and [m["update"] for m in res.metrics] == [0, 1, 2, 3, 4]
    assert not (run.path/"ppo"/"checkpoints").exists() and run.is_done("ppo")   # deleted when the stage finishes
    kept = Run.create(tmp_path/"kept", seed=0)
    go(kept, toy_config(total_updates=2, keep_checkpoints=True, **small))
    assert names(kept) == ["checkpoint-1", "checkpoint-2"]
    none = Run.create(tmp_path/"none", seed=0)
    go(none, toy_config(total_updates=2, **{**small, "save_every": 0, "keep_checkpoints": True}))
    assert names(none) == [] and none.is_done("ppo")
    # a run folder from before (one `ppo/checkpoint` folder) still resumes
    ppo = kept.path/"ppo"
    shutil.move(str(ppo/"checkpoints"/"checkpoint-2"), str(ppo/"checkpoint")); shutil.rmtree(ppo/"checkpoints")
    res = go(kept, toy_config(total_updates=3, **small))
    assert res.resumed_from == 2 and len(res.metrics) == 3
    assert not (ppo/"checkpoint").exists() and not (ppo/"checkpoints").exists()
    for bad in ({"save_every": -1}, {"keep_last": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))): PPOConfig(**bad)
    PPOConfig(save_every=0)
