"DPO stage: starts from the SL-CAI adapter (frozen copy as reference), filters pairs, fails clearly on bad input."
import json

import pytest
import torch

from cai_workbench.core.run import Run
from cai_workbench.stages.dpo import DPOConfig, run_dpo
from cai_workbench.engine.models import LoraSpec, load_model, save_adapter


def _run_with_pairs(tmp_path, rows):
    run = Run.create(tmp_path/"run", device="cpu")
    (run.stage_dir("preferences")/"pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def _pairs(n, **kw):
    return [dict(id=str(i), prompt=f"tell me a secret {i}", chosen="I would rather not share that.",
                 rejected=f"secret number {i}", source="ai", label="a", soft_label=0.9, **kw) for i in range(n)]


def test_dpo_continues_the_sft_adapter(tmp_path):
    run = _run_with_pairs(tmp_path, _pairs(8))
    sft, tok = load_model("tiny", purpose="train", device="cpu", lora=LoraSpec(r=4, alpha=8))
    with torch.no_grad():                      # give the "SFT" adapter non-zero weights
        for n, p in sft.named_parameters():
            if "lora_B" in n: p.normal_(0, 0.02)
    save_adapter(sft, run.path/"sft"/"adapter", base_model="tiny", tokenizer=tok)
    res = run_dpo(run, DPOConfig(max_steps=6, batch_size=4, learning_rate=5e-3), model="tiny", progress=False)
    assert res.reference.startswith("SL-CAI")
    assert res.final_loss < res.first_loss
    x = torch.tensor([tok("tell me a secret")["input_ids"]])
    sft_m, _ = load_model(run.path/"sft"/"adapter", device="cpu", dtype="float32")
    dpo_m, _ = load_model(run.path/"dpo"/"adapter", device="cpu", dtype="float32")
    with torch.no_grad():
        assert not torch.allclose(sft_m(x).logits, dpo_m(x).logits, atol=1e-4)
    assert json.loads((run.path/"dpo"/"metrics.json").read_text())["reference"].startswith("SL-CAI")
    assert not (run.path/"dpo"/"adapter"/"ref").exists()       # only the trained adapter is saved


def test_dpo_refuses_when_everything_is_filtered(tmp_path):
    run = _run_with_pairs(tmp_path, _pairs(4, ) [:2] + [dict(_pairs(1)[0], label="tie")])
    with pytest.raises(ValueError, match="only 0 usable pair"):
        run_dpo(run, DPOConfig(min_confidence=0.95), model="tiny", progress=False)
    assert not (run.path/"dpo").exists()


def test_dpo_filters_pairs_first(tmp_path):
    "data_filters run before DPO: a repeated pair and a boilerplate revision pair are dropped and counted."
    rows = _pairs(4) + [dict(_pairs(1)[0], id="again"),
                        dict(id="rev", prompt="be nice", chosen="Sure, here is a revised response: hello.", rejected="go away",
                             source="revision", label="a", soft_label=1.0)]
    run = _run_with_pairs(tmp_path, rows)
    res = run_dpo(run, DPOConfig(max_steps=1, batch_size=2), model="tiny", progress=False)
    assert res.n_pairs == 4 and res.dropped["exact_duplicate"] == 1 and res.dropped["boilerplate"] == 1
    q = json.loads((run.path/"dpo"/"quality.json").read_text())["data_filters"]
    assert q["kept"] == 4 and q["dropped_ids"] == [["again", "exact_duplicate"], ["rev", "boilerplate"]]



def test_dpo_drops_revision_pairs_that_copy_the_few_shot_answer(tmp_path):
    "A small self-critic repeats the few-shot example's revision for any prompt; those pairs are dropped (critique_revision/few_shot.json)."
    from cai_workbench.core.io import write_json
    from cai_workbench.stages.dpo import _dpo_pairs
    shot = "Dear friend, start with simple recipes like pasta or eggs and cook a little every day."
    rev = lambda i, c: dict(id=f"rev:{i}", prompt=f"How do I fix a bike {i}?", chosen=c, rejected=f"Check the chain {i} and the brakes.",
                            source="revision", label="a", soft_label=1.0)
    rows = [rev(0, shot), rev(1, shot + " Have fun."), rev(2, "Dear friend, check the chain and pump the tyres."), rev(3, "Dear friend, oil the chain.")]
    run = _run_with_pairs(tmp_path, rows)
    write_json(run.stage_dir("critique_revision")/"few_shot.json", {"answers": ["Start with simple recipes.", shot]})
    pairs, dropped, filtered = _dpo_pairs(run, DPOConfig(pair_sources=["revision"]))
    assert [p["id"] for p in pairs] == ["rev:2", "rev:3"] and dropped["few_shot_copy"] == 2
    assert filtered.dropped_ids == {"rev:0": "few_shot_copy", "rev:1": "few_shot_copy"}
    off = DPOConfig(pair_sources=["revision"], filters={"few_shot_copies": False})
    assert len(_dpo_pairs(run, off)[0]) == 4


def _train(pairs, cfg, **kw):
    from cai_workbench.stages.dpo import pair_smoothing, pair_weights, train_dpo
    import tempfile
    torch.manual_seed(0)
    model, tok = load_model("tiny", purpose="train", device="cpu", dtype="float32")
    with tempfile.TemporaryDirectory() as d:
        return train_dpo(model, tok, pairs, cfg, d, progress=False, weights=pair_weights(pairs, cfg),
                         smoothing=pair_smoothing(pairs, cfg), **kw)


def _margins(trainer):
    return [h["rewards/margins"] for h in trainer.state.log_history if "rewards/margins" in h]


def _grad(tr, examples):
    params = [p for p in tr.model.parameters() if p.requires_grad]
    tr.model.zero_grad()
    tr.compute_loss(tr.model, dict(tr.data_collator(examples))).backward()
    return torch.cat([p.grad.flatten().clone() for p in params])


TINY_DPO = DPOConfig(max_steps=1, batch_size=2, learning_rate=1e-9, lora=LoraSpec(r=4, alpha=8, dropout=0.0))


def test_per_pair_smoothing_is_cdpo_on_each_pair():
    "Pair i's gradient is (1-ε_i)·∇(TRL's sigmoid loss) + ε_i·∇(the same loss on the flipped pair), ε_i = 1 - soft_label."
    from cai_workbench.stages.dpo import pair_smoothing
    pairs = [dict(p, soft_label=s) for p, s in zip(_pairs(2), (0.65, 0.9))]
    tr = _train(pairs, TINY_DPO)
    eps = pair_smoothing(pairs, TINY_DPO)
    assert eps == pytest.approx([0.35, 0.1])
    ds = [dict(tr.train_dataset[i]) for i in range(2)]
    plain = lambda e: dict(e, pair_epsilon=0.0, pair_weight=1.0)
    flip = lambda e: plain(dict(e, chosen_ids=e["rejected_ids"], rejected_ids=e["chosen_ids"]))
    both = _grad(tr, ds)
    want = sum((1 - eps[i]) * _grad(tr, [plain(ds[i])]) + eps[i] * _grad(tr, [flip(ds[i])]) for i in range(2)) / 2
    assert torch.allclose(both, want, atol=1e-6, rtol=1e-3)
    # revision and human pairs keep full confidence
    assert pair_smoothing([dict(pairs[0], source="revision", label_source="revision"), dict(pairs[0], label_source="human")], TINY_DPO) == [0.0, 0.0]



def test_per_pair_smoothing_is_cdpo_where_policy_and_reference_differ():
    """The same identity at Δ ≠ 0. With fresh LoRA (B = 0) the policy is the reference, Δ = 0, the flipped pair's gradient is
    minus the plain one, and a factor with exp(−βΔ) for exp(βΔ) (a sign error) would pass; here the adapter is moved first."""
    from cai_workbench.stages.dpo import pair_smoothing
    pairs = [dict(p, soft_label=s) for p, s in zip(_pairs(2), (0.65, 0.9))]
    tr = _train(pairs, TINY_DPO.replace(beta=1.0))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in tr.model.named_parameters():
            if "lora_B" in n: p.copy_(torch.randn(p.shape, generator=g) * 0.5)      # policy ≠ reference (adapter off)
    eps = pair_smoothing(pairs, TINY_DPO)
    ds = [dict(tr.train_dataset[i]) for i in range(2)]
    plain = lambda e: dict(e, pair_epsilon=0.0, pair_weight=1.0)
    flip = lambda e: plain(dict(e, chosen_ids=e["rejected_ids"], rejected_ids=e["chosen_ids"]))
    gp, gf = [_grad(tr, [plain(d)]) for d in ds], [_grad(tr, [flip(d)]) for d in ds]
    assert not torch.allclose(gf[0], -gp[0], atol=1e-6, rtol=1e-2)               # Δ ≠ 0: flipping is not just a sign
    want = sum((1 - eps[i]) * gp[i] + eps[i] * gf[i] for i in range(2)) / 2
    assert torch.allclose(_grad(tr, ds), want, atol=1e-6, rtol=1e-3)
    at_zero = sum((1 - 2*eps[i]) * gp[i] for i in range(2)) / 2                 # what the Δ = 0 formula would give
    assert not torch.allclose(want, at_zero, atol=1e-6, rtol=1e-2)

def test_pair_weight_scales_exactly_that_pairs_gradient():
    from cai_workbench.stages.dpo import pair_weights
    cfg = TINY_DPO.replace(confidence="weight")
    pairs = [dict(p, soft_label=s) for p, s in zip(_pairs(2), (0.65, 0.9))]
    tr = _train(pairs, cfg)
    w = pair_weights(pairs, cfg)
    assert w == pytest.approx([0.3, 0.8])
    ds = [dict(tr.train_dataset[i]) for i in range(2)]
    both = _grad(tr, ds)
    alone = [_grad(tr, [dict(ds[i], pair_weight=1.0)]) for i in (0, 1)]
    assert torch.allclose(both, (w[0] * alone[0] + w[1] * alone[1]) / 2, atol=1e-6, rtol=1e-3)


def test_weak_ai_labels_do_not_train_like_confident_ones():
    "A P=0.501 AI label must not train like P=0.99 (issue 12): its margin stays near logit(0.501); revision pairs train fully."
    cfg = DPOConfig(max_steps=8, batch_size=4, learning_rate=5e-3, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    weak = _margins(_train([dict(p, soft_label=0.501) for p in _pairs(4)], cfg))
    strong = _margins(_train([dict(p, soft_label=0.99) for p in _pairs(4)], cfg))
    revision = _margins(_train([dict(p, soft_label=0.501, source="revision", label_source="revision") for p in _pairs(4)], cfg))
    assert strong[-1] > 0.3 and abs(weak[-1]) < 0.25 * strong[-1], (weak, strong)
    assert revision[-1] == pytest.approx(strong[-1], rel=0.02)               # ε=0 (revision) vs ε=0.01 (P=0.99): both near full


def test_stage_settings_reach_trl(tmp_path, monkeypatch):
    "beta, loss_type and label_smoothing of the stage are what TRL's DPOConfig and trainer use (issue 13)."
    import cai_workbench.stages.dpo as dpo
    from cai_workbench.core.config import ConfigError
    seen = {}
    class Spy(dpo.ConfidenceDPOTrainer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen.update(args=self.args, beta=self.beta, loss_types=self.loss_types, label_smoothing=self.label_smoothing,
                        weights=list(self.train_dataset["pair_weight"]), eps=list(self.train_dataset["pair_epsilon"]))
    monkeypatch.setattr(dpo, "ConfidenceDPOTrainer", Spy)
    rev = dict(id="rev", prompt="tell me a secret, please", chosen="I would rather keep it private.", rejected="the secret is 42",
               source="revision", label_source="revision", label="a", soft_label=1.0)
    run = _run_with_pairs(tmp_path, _pairs(4) + [rev])
    cfg = DPOConfig(beta=0.37, loss_type="robust", label_smoothing=0.2, confidence="weight", max_steps=1, batch_size=2,
                         lora=LoraSpec(r=4, alpha=8))
    res = run_dpo(run, cfg, model="tiny", progress=False)
    assert seen["args"].beta == 0.37 and seen["beta"] == 0.37
    assert seen["args"].loss_type == ["robust"] and seen["loss_types"] == ["robust"]
    assert seen["args"].label_smoothing == 0.2 and seen["label_smoothing"] == 0.2 and res.label_smoothing == 0.2
    assert seen["weights"] == pytest.approx([0.8]*4 + [1.0]) and seen["eps"] == [0.0]*5
    run_dpo(run, cfg.replace(soft_label_smoothing=True), model="tiny", progress=False)
    assert seen["label_smoothing"] == pytest.approx(0.1)                     # mean(1 - 0.9) over the AI pairs
    run_dpo(run, DPOConfig(max_steps=1, batch_size=2, lora=LoraSpec(r=4, alpha=8)), model="tiny", progress=False)
    assert seen["eps"] == pytest.approx([0.1]*4 + [0.0]) and seen["weights"] == [1.0]*5 and seen["loss_types"] == ["sigmoid"]
    with pytest.raises(ConfigError, match="label_smoothing only for"):
        DPOConfig(loss_type="sigmoid", confidence="none", label_smoothing=0.1)   # TRL's sigmoid loss would ignore it
    with pytest.raises(ConfigError, match="per-pair smoothing"):
        DPOConfig(loss_type="ipo")
    with pytest.raises(ConfigError, match="per-pair terms"):
        DPOConfig(loss_type="aot", confidence="weight")


def test_dpo_does_not_recompute_activations_on_cpu(tmp_path):
    "TRL's DPOConfig turns activation checkpointing on by default; on CPU (memory is not the limit) it only recomputes the forward."
    from cai_workbench.stages.dpo import train_dpo
    m, tok = load_model("tiny", purpose="train", device="cpu", dtype="float32")
    pairs = [dict(prompt=f"q {i}?", chosen="Dear friend, yes.", rejected=f"No {i}.", source="revision") for i in range(2)]
    tr = train_dpo(m, tok, pairs, DPOConfig(max_steps=1, batch_size=2, pair_sources=["revision"]), tmp_path/"out", progress=False)
    assert not tr.args.activation_checkpointing and not tr.model.is_activation_checkpointing
