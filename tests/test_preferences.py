"Preference stage: letter-scoring maths, both-order combination, full-string fallback, CoT, pair sources, the stage runner, bad input, TRL."
import json, math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cai_workbench.core.config import ConfigError
from cai_workbench.core.run import Run
from cai_workbench.engine.scoring import combine_orders, completion_logprobs, next_token_logprobs, single_token_ids
from cai_workbench.feedback.labellers import ANSWER_PREFIX, AILabeller, letter_probs, mc_messages
from cai_workbench.stages.preferences import PreferencesConfig, load_pair_file, pair_indices, revision_pairs, run_preferences, save_pairs


class FixedLM(torch.nn.Module):
    "Next-token logits `base` at every position, plus `bonus` on the letter of the option that contains token `trigger`."
    def __init__(self, vocab_size, base, trigger=None, bonus=0.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(vocab_size))
        self.base = torch.zeros(vocab_size)
        for i, v in base.items(): self.base[i] = v
        self.trigger, self.bonus = trigger, bonus

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0, **kw):
        B, T = input_ids.shape
        logits = (self.base + self.w).expand(B, T, -1).clone()
        if self.trigger is not None:
            for b in range(B):
                pos = (input_ids[b] == self.trigger).nonzero().flatten().tolist()
                if pos: logits[b, :, int(input_ids[b, pos[0] - 2])] += self.bonus     # "(A) <trigger>": the letter 2 tokens back
        return SimpleNamespace(logits=logits[:, -logits_to_keep:] if logits_to_keep else logits)


def sig(x): return 1/(1 + math.exp(-x))


@pytest.fixture(scope="module")
def tok(tiny):
    return tiny[1]


def test_letter_probs_known_logits(tok):
    iA, iB = single_token_ids(tok, ["A", "B"])
    m = FixedLM(len(tok), {iA: 1.5, iB: -0.5, 7: 5.0})       # another token's big logit must not matter after normalising
    p = letter_probs(m, tok, ["one", "two", "three"])
    assert p == pytest.approx([sig(2.0)]*3, abs=1e-5)
    # per-row prefixes (the CoT path) give the same read-out
    assert letter_probs(m, tok, ["one", "two"], prefixes=["why", "because x"]) == pytest.approx([sig(2.0)]*2, abs=1e-5)


def test_both_orders_cancel_position_and_follow_content(tok):
    iA, iB = single_token_ids(tok, ["A", "B"])
    safe = tok(" safe", add_special_tokens=False)["input_ids"]
    assert len(safe) == 1
    pairs = [{"id": "1", "prompt": "help", "response_a": "safe", "response_b": "bad"},
             {"id": "2", "prompt": "help", "response_a": "bad", "response_b": "safe"}]
    content = AILabeller(FixedLM(len(tok), {iA: 1.0}, trigger=safe[0], bonus=3.0), tok, progress=False).label(pairs)
    assert content[0]["p_a_ab"] == pytest.approx(sig(4.0), abs=1e-5)
    assert content[0]["p_a_ba"] == pytest.approx(sig(-2.0), abs=1e-5)
    assert [r["chosen"] for r in content] == ["safe", "safe"]
    assert content[1]["soft_label"] == pytest.approx(0.5*(sig(4) + 1 - sig(-2)), abs=1e-5)
    # a labeller that only likes letter A: each order alone is confident, combined it is exactly 1/2 -> a tie
    position = AILabeller(FixedLM(len(tok), {iA: 2.0}), tok, tie_margin=0.01, progress=False).label(pairs)
    assert all(r["p_a_ab"] == pytest.approx(sig(2.0), abs=1e-5) and r["p_a_ba"] == pytest.approx(sig(2.0), abs=1e-5) for r in position)
    assert [r["label"] for r in position] == ["tie", "tie"]
    assert [r["p_a"] for r in position] == pytest.approx([0.5, 0.5])
    # one order only: the position bias goes straight into the label
    one = AILabeller(FixedLM(len(tok), {iA: 2.0}), tok, both_orders=False, progress=False).label(pairs)
    assert [r["label"] for r in one] == ["a", "a"] and one[0]["p_a_ba"] is None


def test_combine_and_clamp():
    assert combine_orders(0.7, 0.7) == pytest.approx(0.5)
    assert combine_orders(0.9, 0.3) == pytest.approx(0.8)
    assert combine_orders(0.99, 0.01, (0.4, 0.6)) == pytest.approx(0.6)
    assert combine_orders(0.3, None) == pytest.approx(0.3)


def test_real_tiny_model_matches_log_prob_path(tiny):
    model, tok = tiny
    pairs = [{"id": str(i), "prompt": f"question {i}", "response_a": f"answer {i}", "response_b": "no"} for i in range(3)]
    lab = AILabeller(model, tok, progress=False)
    recs = lab.label(pairs)
    for p, r in zip(pairs, recs):
        q = lab.principle(p["id"]).comparison_question
        assert r["question"] == q and r["principle"] == lab.principle(p["id"]).name
        lp = next_token_logprobs(model, tok, [mc_messages(p["prompt"], p["response_a"], p["response_b"], q)], ["A", "B"], prefix=ANSWER_PREFIX)
        assert r["p_a_ab"] == pytest.approx(torch.softmax(lp[0], -1)[0].item(), abs=1e-4)
        assert r["labeller"] == "tiny" and r["scoring"] == "token" and r["label_source"] == "ai"
    # principles are seeded by the pair id: a second labeller agrees
    assert [r["principle"] for r in AILabeller(model, tok, progress=False).label(pairs)] == [r["principle"] for r in recs]


def test_letters_that_are_not_single_tokens(tiny):
    model, tok = tiny
    assert len(tok("Alpha", add_special_tokens=False)["input_ids"]) > 1
    lab = AILabeller(model, tok, letters=["Alpha", "Beta"], progress=False)
    assert lab.scoring == "sequence"
    pair = {"id": "1", "prompt": "q", "response_a": "yes", "response_b": "no"}
    r = lab.label([pair])[0]
    msgs = mc_messages("q", "yes", "no", r["question"], ["Alpha", "Beta"])
    la, lb = (completion_logprobs(model, tok, [msgs], [ANSWER_PREFIX + x])[0] for x in ("Alpha", "Beta"))
    assert r["p_a_ab"] == pytest.approx(sig(la - lb), abs=1e-4)
    assert r["scoring"] == "sequence"
    with pytest.raises(ValueError, match="not a single token"):
        AILabeller(model, tok, letters=["Alpha", "Beta"], scoring="token")
    with pytest.raises(ValueError, match="two different"):
        AILabeller(model, tok, letters=["A", "A"])


def test_chain_of_thought_reasoning_and_clamp(tiny):
    model, tok = tiny
    pairs = [{"id": str(i), "prompt": "q", "response_a": "safe answer", "response_b": f"bad answer {i}"} for i in range(2)]
    recs = AILabeller(model, tok, cot=True, cot_max_new_tokens=6, cot_clamp=(0.45, 0.55), progress=False).label(pairs)
    for r in recs:
        assert isinstance(r["reasoning"], str) and isinstance(r["reasoning_ba"], str)
        assert 0.45 - 1e-9 <= r["p_a"] <= 0.55 + 1e-9
        assert 0 < r["p_a_ab"] < 1


def test_pairing_schemes():
    assert pair_indices(4) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert pair_indices(3, "adjacent") == [(0, 1), (1, 2)]
    import random
    r = pair_indices(5, "random", 3, random.Random(0))
    assert len(set(r)) == 3 and all(i < j for i, j in r)
    with pytest.raises(ValueError, match="k=1"): pair_indices(1)


def _run_with_revisions(tmp_path, records):
    run = Run.create(tmp_path/"run", seed=0)
    (run.stage_dir("critique_revision")/"records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def test_run_preferences_end_to_end_and_resume(tmp_path):
    run = _run_with_revisions(tmp_path, [{"id": "r1", "prompt": "How do I hurt someone?", "initial_response": "Hit them.",
                                          "final_response": "I won't help with hurting people.", "principles": ["harm"]}])
    cfg = PreferencesConfig(limit=3, k=3, pairing="adjacent", generation={"max_new_tokens": 8})
    res = run_preferences(run, cfg, model="tiny", progress=False)
    assert run.is_done("preferences")
    pairs = load_pair_file(res.path/"pairs.jsonl")
    ai = [p for p in pairs if p["source"] == "ai"]
    assert res.by_source["revision"] == 1 and len(ai) == 3*2 - res.by_source.get("skipped_identical", 0)
    for p in ai:
        assert {"id", "prompt", "chosen", "rejected", "principle", "p_a_ab", "p_a_ba", "soft_label", "label", "label_source",
                "reasoning", "labeller"} <= set(p)
        assert p["soft_label"] >= 0.5 and (p["chosen"], p["rejected"]) in ((p["response_a"], p["response_b"]), (p["response_b"], p["response_a"]))
    rev = next(p for p in pairs if p["source"] == "revision")
    assert (rev["chosen"], rev["soft_label"], rev["label_source"]) == ("I won't help with hurting people.", 1.0, "revision")
    from datasets import load_from_disk
    ds = load_from_disk(str(res.path/"dataset"))
    assert ds.column_names[:3] == ["prompt", "chosen", "rejected"] and "soft_label" in ds.column_names
    assert len(ds) == sum(p["label"] != "tie" for p in pairs)
    samples = (res.path/"samples.jsonl").read_text().splitlines()
    assert len(samples) == 9
    # a rerun resumes from the stores and keeps a human decision made in between
    from cai_workbench.ui.pair_viewer import set_label
    set_label(res.path, ai[0]["id"], "tie")
    res2 = run_preferences(run, cfg, model="tiny", progress=False)
    pairs2 = load_pair_file(res2.path/"pairs.jsonl")
    assert len((res.path/"samples.jsonl").read_text().splitlines()) == 9
    assert pairs2[0]["label_source"] == "human" and pairs2[0]["label"] == "tie"
    assert [p["p_a_ab"] for p in pairs2[1:]] == [p["p_a_ab"] for p in pairs[1:]]
    assert res2.summary()["pairs"] == len(pairs2)


def test_bad_input_one_clear_error_nothing_written(tmp_path):
    with pytest.raises(ConfigError, match="k=1"): PreferencesConfig.from_dict({"k": 1})
    with pytest.raises(ConfigError, match="pairs_file"): PreferencesConfig.from_dict({"sources": ["file"]})
    with pytest.raises(ConfigError, match="cot_clamp"): PreferencesConfig.from_dict({"cot_clamp": [0.6, 0.7]})
    run = Run.create(tmp_path/"run")
    from cai_workbench.core.run import MissingStageError
    with pytest.raises(MissingStageError, match="critique_revision"):
        run_preferences(run, PreferencesConfig(), model="tiny", progress=False)
    bad = tmp_path/"pairs.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "response_a": "x", "response_b": "ok"}) + "\n"
                   + json.dumps({"prompt": "p", "response_a": "", "response_b": "y"}) + "\n")
    with pytest.raises(ValueError, match=r"pairs.jsonl:2: missing or empty field\(s\) \['response_a'\]"):
        run_preferences(run, PreferencesConfig(sources=["file"], pairs_file=str(bad)), model="tiny", progress=False)
    bad.write_text(json.dumps({"prompt": "p", "text": "x"}) + "\n")
    with pytest.raises(ValueError, match="no response columns"):
        run_preferences(run, PreferencesConfig(sources=["file"], pairs_file=str(bad)), model="tiny", progress=False)
    good = tmp_path/"good.jsonl"
    good.write_text(json.dumps({"prompt": "p", "chosen": "x", "rejected": "y"}) + "\n")
    with pytest.raises(ValueError, match="not a single token"):
        run_preferences(run, PreferencesConfig(sources=["file"], pairs_file=str(good), letters=["Alpha", "Beta"], scoring="token"),
                        model="tiny", progress=False)
    rev = _run_with_revisions(tmp_path/"r", [{"id": "x", "prompt": "p", "answer": "?"}])
    with pytest.raises(ValueError, match="lacks prompt"):
        run_preferences(rev, PreferencesConfig(), model="tiny", progress=False)
    assert not (run.path/"preferences").exists() and not (rev.path/"preferences").exists()


def test_file_pairs_keep_human_label(tmp_path):
    good = tmp_path/"good.jsonl"
    good.write_text("".join(json.dumps({"id": i, "prompt": "p", "chosen": f"good {i}", "rejected": "bad"}) + "\n" for i in range(3)))
    run = Run.create(tmp_path/"run")
    res = run_preferences(run, PreferencesConfig(sources=["file"], pairs_file=str(good)), model="tiny", progress=False)
    pairs = load_pair_file(res.path/"pairs.jsonl")
    assert [p["id"] for p in pairs] == ["file:0", "file:1", "file:2"] and all(p["human_label"] == "a" for p in pairs)


def test_hh_rlhf_parser_feeds_the_labeller(tiny, shared):
    from cai_workbench.feedback.label_quality import check_quality_inputs, human_agreement
    path = shared("hh-rlhf/harmless-base/test.jsonl.gz")
    hh = check_quality_inputs(PreferencesConfig(quality_pairs=6, hh_rlhf=str(path)))
    assert len(hh) == 6 and all(p["prompt"] and p["chosen"] and p["rejected"] and p["chosen"] != p["rejected"] for p in hh)
    ag, recs = human_agreement(AILabeller(*tiny, progress=False), hh, seed=0)
    assert ag.n == 6 and all((r["response_a"] == h["chosen"]) == (r["human_label"] == "a") for r, h in zip(recs, hh))
    with pytest.raises(FileNotFoundError, match="quality_pairs: 0"):
        check_quality_inputs(PreferencesConfig(quality_pairs=2, hh_rlhf=str(path.parent/"missing.jsonl.gz")))


def test_dataset_trains_with_trl_reward_and_dpo(tmp_path, tiny):
    "The dataset goes into TRL's RewardTrainer and DPOTrainer as is (one step each on the tiny model)."
    from datasets import load_from_disk
    from transformers import AutoModelForSequenceClassification
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer
    from cai_workbench.feedback.label_quality import synthetic_records
    from cai_workbench.engine.embedded import ensure_tiny
    from cai_workbench.engine.models import load_model
    save_pairs(tmp_path, synthetic_records(6))
    ds = load_from_disk(str(tmp_path/"dataset"))
    tok = tiny[1]
    common = dict(max_steps=1, per_device_train_batch_size=2, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True)
    rm = AutoModelForSequenceClassification.from_pretrained(ensure_tiny(), num_labels=1)
    rm.config.pad_token_id = tok.pad_token_id
    tr = RewardTrainer(model=rm, args=RewardConfig(output_dir=str(tmp_path/"rm"), **common), train_dataset=ds, processing_class=tok)
    assert math.isfinite(tr.train().training_loss)
    pm, ptok = load_model("tiny", purpose="train", device="cpu")
    tr = DPOTrainer(model=pm, args=DPOConfig(output_dir=str(tmp_path/"dpo"), **common), train_dataset=ds, processing_class=ptok)
    assert math.isfinite(tr.train().training_loss)


@pytest.mark.slow
def test_embedded_labeller_on_hh_rlhf(embedded, shared):
    "The 135M model's labels on real pairs: valid probabilities, a stored principle, and both orders."
    from cai_workbench.feedback.label_quality import bias_report, human_agreement
    from cai_workbench.inputs.prompts import load_hh_rlhf_pairs
    hh = list(load_hh_rlhf_pairs(shared("hh-rlhf/harmless-base/test.jsonl.gz"), limit=4, single_turn=True))
    ag, recs = human_agreement(AILabeller(*embedded, batch_size=4, progress=False), hh)
    assert ag.n == 4 and all(0 < r["p_a_ab"] < 1 and 0 < r["p_a_ba"] < 1 and r["principle"] for r in recs)
    assert bias_report(recs).position_consistency is not None


def test_few_shot_answers_are_balanced():
    "Issue 12: the built-in few-shot answers were A, B, A (an odd count leans A). Every allowed count is balanced now."
    from cai_workbench.feedback.labellers import FEW_SHOT
    counts = range(0, len(FEW_SHOT) + 1, 2)
    assert len(FEW_SHOT) >= 4 and list(counts)[-1] == len(FEW_SHOT)
    for n in counts:
        ans = [m["content"][-2] for m in mc_messages("p", "x", "y", "q", few_shot=n) if m["role"] == "assistant"]
        assert ans.count("A") == ans.count("B") == n//2, (n, ans)
    for odd in (1, 3):
        with pytest.raises(ValueError, match=f"few_shot={odd}"): mc_messages("p", "x", "y", "q", few_shot=odd)
        with pytest.raises(ValueError, match=f"few_shot={odd}"): PreferencesConfig(few_shot=odd)


def test_sft_policy_is_loaded_onto_the_feedback_model_and_selected_through_the_seam(tmp_path, monkeypatch):
    "The run's SFT adapter on the feedback model's base: one base model loaded, the adapter selected per generate call, the same samples as the adapter loaded on its own, labels from the plain base."
    import cai_workbench.stages.preferences as P
    from cai_workbench.core.io import read_jsonl
    from cai_workbench.engine.generator import Generator
    from cai_workbench.engine.models import LoraSpec, load_model, save_adapter
    run = Run.create(tmp_path/"run", seed=0)
    pm, t = load_model("tiny", purpose="train", device="cpu", lora=LoraSpec(r=4, alpha=8))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n: p.normal_(0, 0.5)                       # the adapter changes what is sampled
    save_adapter(pm, run.path/"sft"/"adapter", base_model="tiny", tokenizer=t)
    loads, adapters, real_load, real_gen = [], [], P.load_model, Generator.generate
    monkeypatch.setattr(P, "load_model", lambda name, *a, **k: loads.append(str(name)) or real_load(name, *a, **k))
    monkeypatch.setattr(Generator, "generate", lambda self, *a, **k: adapters.append(k.get("adapter")) or real_gen(self, *a, **k))
    cfg = PreferencesConfig(sources=["sampled"], limit=3, k=2, generation={"max_new_tokens": 8})
    res = run_preferences(run, cfg, model="tiny", progress=False)
    assert loads == ["tiny"] and adapters[0] == "policy"              # one base model; the seam selects the adapter
    got = {r["id"]: r["text"] for r in read_jsonl(res.path/"samples.jsonl")}
    sft, stok = real_load(run.path/"sft"/"adapter")                   # the adapter loaded on its own (the old path)
    from cai_workbench.inputs.prompts import load_prompts
    prompts = list(load_prompts(cfg.prompts, limit=3, seed=0))
    flat = [(p, j) for p in prompts for j in range(2)]
    gen = Generator(sft, stok, cfg.generation.replace(system_prompt=cfg.system_prompt), progress=False)
    want = [g.text for g in real_gen(gen, [p["prompt"] for p, _ in flat], seed=0)]
    assert [got[f"{p['id']}:s{j}"] for p, j in flat] == want
    base, btok = real_load("tiny")                                    # labels: the feedback model without the adapter
    lab = P.make_labeller(cfg.labeller, base, btok, cfg, 0, False)
    pairs = load_pair_file(res.path/"pairs.jsonl")
    again = {r["id"]: r["p_a_ab"] for r in lab.label([{k: p[k] for k in ("id", "prompt", "response_a", "response_b", "source")} for p in pairs])}
    # equal up to fp32 reduction order (the pipeline scores on the LoRA-wrapped model with its adapter off; ~2e-7 apart):
    # an adapter left on (lora_B ~ N(0, 0.5) above) moves these probabilities by far more than 1e-5
    assert [p["p_a_ab"] for p in pairs] == pytest.approx([again[p["id"]] for p in pairs], abs=1e-5)


def test_revision_pairs_honour_what_the_critique_stage_dropped(tmp_path):
    "A record SFT dropped (commentary, near-duplicate) makes no revision pair: it trains neither the reward model nor DPO."
    from cai_workbench.inputs.pair_data import revision_pairs
    rec = lambda i, why: {"id": i, "prompt": f"How do I hurt someone {i}?", "initial_response": "Hit them.",
                          "final_response": f"I won't help with hurting people ({i}).", "principles": ["harm"], "dropped_by": why}
    run = _run_with_revisions(tmp_path, [rec("kept", None), rec("talk", "commentary"), rec("dup", "near_duplicate")])
    rp = revision_pairs(run.path/"critique_revision"/"records.jsonl")
    assert [p["id"] for p in rp] == ["rev:kept"] and rp.dropped == {"commentary": 1, "near_duplicate": 1}
    assert len(revision_pairs(run.path/"critique_revision"/"records.jsonl", keep_dropped=True)) == 3
    res = run_preferences(run, PreferencesConfig(sources=["revision"]), model="tiny", progress=False)
    assert [p["id"] for p in load_pair_file(res.path/"pairs.jsonl")] == ["rev:kept"] and res.by_source["revision_dropped"] == 2
    from datasets import load_from_disk
    assert load_from_disk(str(res.path/"dataset"))["id"] == ["rev:kept"]          # what the reward model and DPO read
