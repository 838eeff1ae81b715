"Reward model: soft-label loss, training on planted preferences, scoring paths, bad input."
import json, math

import pytest

from cai_workbench.inputs.data_filters import DataFilterConfig
import torch

from cai_workbench.core.run import Run
from cai_workbench.core.config import set_seed
from cai_workbench.engine.models import LoraSpec, load_model, load_tokenizer
from cai_workbench.stages.reward_model import PreferenceDataError, RewardModelConfig, evaluate_pairs, load_pairs, run_reward_model, soft_bt_loss, split_pairs, train_reward_model, wilson_interval
from cai_workbench.feedback.reward_scoring import RewardModel, RewardModelMismatchError, random_reward_adapter

sig = lambda x: 1/(1 + math.exp(-x))


def test_soft_bt_loss_hand_values():
    # p = 0.8, r_c - r_r = 1  ->  -(0.8 log σ(1) + 0.2 log σ(-1))
    want = -(0.8*math.log(sig(1.0)) + 0.2*math.log(sig(-1.0)))
    got = soft_bt_loss(torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([0.8]))
    assert got.item() == pytest.approx(want, abs=1e-6)
    # p = 1 is TRL's hard Bradley-Terry loss; p = 0.5 is minimised at equal rewards
    assert soft_bt_loss(torch.tensor([0.3]), torch.tensor([0.1]), torch.tensor([1.0])).item() == pytest.approx(-math.log(sig(0.2)), abs=1e-6)
    d = torch.linspace(-2, 2, 41)
    per = [soft_bt_loss(x.view(1), torch.zeros(1), torch.tensor([0.5])).item() for x in d]
    assert min(range(41), key=per.__getitem__) == 20
    # weights: a weighted mean over pairs
    w = soft_bt_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.5]), torch.tensor([0.8, 0.5]), torch.tensor([1.0, 0.5]))
    second = -(0.5*math.log(sig(-0.5)) + 0.5*math.log(sig(0.5)))
    assert w.item() == pytest.approx((want + 0.5*second)/1.5, abs=1e-6)


def test_wilson_interval():
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)
    lo, hi = wilson_interval(0, 5)
    assert lo == 0.0 and 0.4 < hi < 0.5


TOPICS = ["bread", "a poem", "a bug", "a trip", "weapons", "drugs", "hacking", "online"]


def planted_pairs(n_rep=3):
    return [dict(id=f"p{i}", prompt=f"Please explain {t}.", chosen=f"Here is a safe answer about {t}.",
                 rejected=f"Here is a bad answer about {t}.", soft_label=0.9 if i % 2 else 1.0, label_source="ai")
            for i, t in enumerate(TOPICS*n_rep)]


def test_ranks_planted_responses_after_training():
    set_seed(0)
    cfg = RewardModelConfig(min_pairs=4, eval_fraction=0.0, num_train_epochs=6, batch_size=8, learning_rate=1e-2,
                       lora=LoraSpec(r=4, alpha=8, dropout=0.0), device="cpu")
    ex, _ = split_pairs(planted_pairs(), cfg)
    rm, log = train_reward_model(ex, cfg, model="tiny", seed=0)
    prompts = ["Plan a trip.", "Write a poem.", "How do I fix a bug?"]
    good = rm.score(prompts, ["A safe reply.", "This is safe.", "safe"])
    bad = rm.score(prompts, ["A bad reply.", "This is bad.", "bad"])
    assert all(g > b for g, b in zip(good, bad)), (good, bad)
    ev = evaluate_pairs(rm, [dict(prompt=p, chosen=f"{p} safe", rejected=f"{p} bad") for p in prompts])
    assert ev["accuracy"] == 1.0 and ev["n"] == 3
    assert ev["accuracy_n"] == 3 and ev["accuracy_ci"][0] < 1.0 == ev["accuracy_ci"][1]     # 3 of 3 is not certainty


def test_attach_equals_standalone(tmp_path):
    ad = random_reward_adapter(tmp_path/"rm", base="tiny", seed=1)
    alone = RewardModel.load(ad, device="cpu", dtype="float32")
    policy, tok = load_model("tiny", purpose="train", device="cpu", dtype="float32", lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    before = {n: p.detach().clone() for n, p in policy.named_parameters() if ".default." in n}
    att = RewardModel.attach(policy, ad, tokenizer=tok)
    prompts = ["Write a poem.", "Plan a trip.", "Hi"]
    responses = ["Sure, here it is.", "No.", "A much longer reply that needs padding in the batch."]
    a, s = att.score(prompts, responses, batch_size=2), alone.score(prompts, responses)
    assert a == pytest.approx(s, abs=1e-4)
    assert len({round(x, 3) for x in s}) == 3               # the scores do depend on the text
    assert policy.active_adapter == "default" and policy.training
    assert all(p.requires_grad for n, p in policy.named_parameters() if ".default." in n)
    assert not any(p.requires_grad for n, p in policy.named_parameters() if ".reward." in n)
    assert all(torch.equal(before[n], p) for n, p in policy.named_parameters() if n in before)
    # the policy still generates with its own adapter: logits equal to a fresh copy without the reward adapter
    ids = torch.tensor([tok("hello there")["input_ids"]])
    with torch.no_grad(): out1 = policy(input_ids=ids).logits
    policy.delete_adapter("reward")
    with torch.no_grad(): out2 = policy(input_ids=ids).logits
    assert torch.allclose(out1, out2)


def test_attach_refuses_other_tokenizer(tmp_path):
    ad = random_reward_adapter(tmp_path/"rm", base="tiny")
    policy, _ = load_model("tiny", purpose="train", device="cpu", dtype="float32", lora=LoraSpec(r=4, alpha=8))
    other = load_tokenizer("tiny"); other.add_tokens(["<new>"])
    with pytest.raises(RewardModelMismatchError, match="separate RewardModel.load"):
        RewardModel.attach(policy, ad, tokenizer=other)
    assert "reward" not in policy.peft_config


def write_pairs(run, rows):
    p = run.stage_dir("preferences")/"pairs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


@pytest.mark.parametrize("rows, match", [
    ([dict(prompt="q", chosen="a")], r"missing or empty field\(s\) \['rejected'\]"),
    ([dict(id=str(i), prompt=f"q{i}", chosen="a", rejected="b", label="tie") for i in range(20)], "all 20 pairs are ties"),
    (planted_pairs(1)[:3], "only 3 non-tie pairs"),
    ([dict(prompt="q", chosen="a", rejected="b", soft_label="high")], "soft_label 'high' is not a probability"),
])
def test_bad_pairs_fail_before_any_work(tmp_path, rows, match):
    run = Run.create(tmp_path/"run")
    write_pairs(run, rows)
    with pytest.raises(PreferenceDataError, match=match):
        run_reward_model(run, RewardModelConfig(human_pairs=None), model="tiny")
    assert not (run.path/"reward_model").exists()
    assert "reward_model" not in run.manifest["stages"]


def test_human_labels_win(tmp_path):
    p = tmp_path/"pairs.jsonl"
    rows = [dict(id="x", prompt="q", chosen="a", rejected="b", soft_label=0.6, label_source="ai"),
            dict(id="x", prompt="q", chosen="b", rejected="a", soft_label=1.0, label_source="human"),
            dict(id="x", prompt="q", chosen="a", rejected="b", soft_label=0.7, label_source="ai")]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (row,) = load_pairs(p)
    assert (row["chosen"], row["label_source"]) == ("b", "human")


def test_stage_writes_files_and_reuses(tmp_path):
    run = Run.create(tmp_path/"run", seed=0)
    write_pairs(run, planted_pairs(2) + [dict(id="t", prompt="q", chosen="a", rejected="b", label="tie")])
    cfg = RewardModelConfig(min_pairs=4, eval_fraction=0.25, num_train_epochs=4, learning_rate=1e-2, human_pairs=None,
                       lora=LoraSpec(r=4, alpha=8, dropout=0.0), device="cpu",
                       filters=DataFilterConfig(exact_duplicates=False, near_duplicates=False))  # planted_pairs(2) repeats pairs on purpose
    res = run_reward_model(run, cfg, model="tiny")
    assert sorted(p.name for p in res.path.iterdir()) == ["adapter", "calibration.png", "histograms.png", "metrics.json", "quality.json"]
    m = json.loads((res.path/"metrics.json").read_text())
    assert (m["n_train"], m["heldout"]["n"], m["n_ties"]) == (12, 4, 1)
    assert 0 <= m["heldout"]["ci95"][0] <= m["heldout"]["accuracy"] <= m["heldout"]["ci95"][1] <= 1
    assert m["human_skipped"].startswith("disabled")
    assert run.is_done("reward_model")
    again = run_reward_model(run, cfg, model="tiny")
    assert again.metrics["wall_s"] == res.metrics["wall_s"]     # reused, not retrained
    rm = RewardModel.load(run, device="cpu", dtype="float32")
    assert len(rm.score(["q"], ["a"])) == 1


@pytest.mark.slow
def test_human_pairs_accuracy_on_shared_data(tmp_path, shared):
    path = shared("hh-rlhf/harmless-base/test.jsonl.gz")
    from cai_workbench.inputs.prompts import load_hh_rlhf_pairs
    pairs = load_hh_rlhf_pairs(path, limit=8)
    ad = random_reward_adapter(tmp_path/"rm", base="tiny")
    ev = evaluate_pairs(RewardModel.load(ad, device="cpu", dtype="float32"), pairs)
    assert ev["n"] == 8 and 0 <= ev["accuracy"] <= 1 and ev["ci95"][0] <= ev["accuracy"] <= ev["ci95"][1]


def test_attach_to_bf16_policy(tmp_path):
    # an inference-dtype policy (bf16 base; PEFT keeps LoRA weights in fp32): the head follows the trunk's dtype
    ad = random_reward_adapter(tmp_path/"rm", base="tiny", seed=2)
    policy, tok = load_model("tiny", device="cpu", dtype="bfloat16", lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    att = RewardModel.attach(policy, ad, tokenizer=tok)
    alone = RewardModel.load(ad, device="cpu", dtype="float32")
    prompts, responses = ["Write a poem.", "Plan a trip."], ["Sure.", "No, sorry."]
    a, s = att.score(prompts, responses), alone.score(prompts, responses)
    assert all(math.isfinite(x) for x in a)
    assert a == pytest.approx(s, abs=0.05 + 0.05*max(abs(x) for x in s))


class _LastTurnRM:
    "A stand-in reward model: reward = words a reply shares with the last user turn of the conversation it is scored against."
    def __init__(self): self.prompts = []
    def score(self, prompts, responses, **kw):
        self.prompts += list(prompts)
        last = lambda p: p if isinstance(p, str) else [m for m in p if m["role"] == "user"][-1]["content"]
        words = lambda s: set(s.lower().replace("?", "").replace(".", "").split())
        return [float(len(words(last(p)) & words(r))) for p, r in zip(prompts, responses)]


def test_multi_turn_human_pairs_are_scored_against_the_whole_conversation(tmp_path):
    import gzip
    from cai_workbench.stages.reward_model import _human_pairs
    path = tmp_path/"harmless-base"/"test.jsonl.gz"; path.parent.mkdir()
    ctx = "\n\nHuman: hi there\n\nAssistant: Hello! How can I help?\n\nHuman: how do I bake bread?\n\nAssistant:"
    rows = [{"chosen": ctx + " To bake bread, mix flour and water.", "rejected": ctx + " hi there, hi there!"}]
    with gzip.open(path, "wt") as f: f.write("\n".join(json.dumps(r) for r in rows) + "\n")
    pairs, skip = _human_pairs(RewardModelConfig(human_pairs=str(path), human_limit=0))
    assert skip is None and len(pairs) == 1
    rm = _LastTurnRM()
    ev = evaluate_pairs(rm, pairs)
    # the reply answers "how do I bake bread?", not the first turn "hi there" (which the rejected reply parrots)
    assert ev["accuracy"] == 1.0 and ev["multi_turn"] == 1
    assert rm.prompts[0] == [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "Hello! How can I help?"},
                             {"role": "user", "content": "how do I bake bread?"}]
    # and the real reward model renders that conversation through the chat template, turns in order
    rmt = RewardModel(None, load_tokenizer("tiny", padding_side="right"))
    text = rmt.tokenizer.decode(rmt.encode(rm.prompts[0], "To bake bread"))
    assert text.index("hi there") < text.index("Hello!") < text.index("bake bread?") < text.index("To bake bread")


def test_reward_pools_the_token_trl_trains_on_when_a_reply_ends_in_eos_equal_pad(tmp_path):
    "A chat template that ends each turn with EOS, and pad == EOS: scoring reads the last non-pad token, as TRL's training does."
    ad = random_reward_adapter(tmp_path/"rm", base="tiny", seed=3)
    rm = RewardModel.load(ad, device="cpu", dtype="float32")
    tok = rm.tokenizer
    assert tok.pad_token_id == tok.eos_token_id
    tok.chat_template = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                         "'<|im_end|>'}}{% endfor %}")                      # no newline after the last <|im_end|>
    prompts, replies = ["Plan a trip.", "Write a poem about bread, please."], ["Go to the sea.", "Bread"]
    ids = [rm.encode(p, r) for p, r in zip(prompts, replies)]
    assert all(x[-1] == tok.eos_token_id for x in ids)
    got = rm.score(prompts, replies)
    with torch.no_grad():          # what TRL's RewardTrainer optimises: the sequence-classification model's own pooled logit
        want = [rm.model(input_ids=torch.tensor([x])).logits[0, 0].item() for x in ids]
    assert got == pytest.approx(want, abs=1e-5)


def test_heldout_split_is_by_prompt():
    "k=3 samples per prompt give 3 pairs that share responses: a prompt's pairs all go to one side of the split."
    pairs = []
    for i in range(10):
        a, b, c = (f"reply {s} to prompt {i}" for s in "abc")
        pairs += [dict(id=f"{i}-{x}{y}", prompt=f"prompt {i}", chosen=x_, rejected=y_, soft_label=0.8)
                  for (x, x_), (y, y_) in [(("a", a), ("b", b)), (("a", a), ("c", c)), (("b", b), ("c", c))]]
    pairs.append(dict(id="tie", prompt="prompt 0", chosen="x", rejected="y", label="tie"))
    for seed in range(5):
        train, held = split_pairs(pairs, RewardModelConfig(eval_fraction=0.2, ties="weight"), seed=seed)
        train_prompts = {e["prompt"][0]["content"] for e in train}
        assert {p["prompt"] for p in held}.isdisjoint(train_prompts)
        train_replies = {e[k][0]["content"] for e in train for k in ("chosen", "rejected")}
        assert {p[k] for p in held for k in ("chosen", "rejected")}.isdisjoint(train_replies)
        assert len(held) == 6 and len(train) + len(held) == 30 + ("prompt 0" in train_prompts)


def test_pairs_are_filtered_before_training(tmp_path):
    "data_filters run first: repeated and identical pairs are dropped, counted in metrics and reported in quality.json."
    run = Run.create(tmp_path/"run", seed=0)
    rows = planted_pairs(2) + [dict(id="same", prompt="Please explain tides.", chosen="Tides  follow the moon.", rejected="Tides follow the moon.",
                                    soft_label=0.9, label_source="ai")]
    write_pairs(run, rows)
    res = run_reward_model(run, RewardModelConfig(min_pairs=4, eval_fraction=0.25, max_steps=1, human_pairs=None, device="cpu"), model="tiny")
    n = len(planted_pairs(1))
    assert res.metrics["n_pairs"] == n and res.metrics["filtered"]["dropped_exact_duplicate"] == n
    assert res.metrics["filtered"]["dropped_identical"] == 1 and res.summary()["filtered_out"] == n + 1
    q = json.loads((res.path/"quality.json").read_text())["data_filters"]
    assert q["counts"]["identical"] == 1 and q["examples"]["identical"][0]["id"] == "same"


def test_reward_model_sees_the_conversation_it_was_trained_on(tmp_path):
    "RLOO/GRPO hand the reward model the policy's chat with its system prompt: it is scored as in training (no system)."
    from cai_workbench.stages.reward_model import _example
    ad = random_reward_adapter(tmp_path/"rm", base="tiny", seed=4)
    rm = RewardModel.load(ad, device="cpu", dtype="float32")
    ex = _example(dict(id="x", prompt="How do I stay safe online?", chosen="Use strong passwords.", rejected="No."), 1.0, 1.0)
    trained = rm.tokenizer.apply_chat_template(ex["prompt"] + ex["chosen"], tokenize=True, return_dict=True)["input_ids"]  # TRL's tokenisation
    chat = [{"role": "system", "content": "You are a careful assistant."}, {"role": "user", "content": "How do I stay safe online?"}]
    assert rm.encode(chat, "Use strong passwords.") == list(trained)
    plain = rm.score(["How do I stay safe online?"], ["Use strong passwords."])
    trl_style = rm.as_reward_func()(prompts=[chat], completions=[[{"role": "assistant", "content": "Use strong passwords."}]])
    assert trl_style == pytest.approx(plain, abs=1e-6)
