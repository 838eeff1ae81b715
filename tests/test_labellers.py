"Labeller protocol and registry: a new method is one class + one register line; the likelihood-ratio labeller's maths."
import json
from types import SimpleNamespace

import pytest
import torch

from cai_workbench.core.run import Run
from cai_workbench.feedback.labellers import CONDITION, GENERIC, LABELLERS, Labeller, LikelihoodRatioLabeller, labelled_record, make_labeller, register_labeller
from cai_workbench.inputs.pair_data import load_pair_file
from cai_workbench.stages.preferences import PreferencesConfig, run_preferences
from cai_workbench.engine.scoring import completion_logprobs


class KeywordLM(torch.nn.Module):
    "Uniform logits, plus `bonus` on `word_ids` at every position after the first `trigger_id` token."
    def __init__(self, vocab, word_ids, trigger_id, bonus=4.0):
        super().__init__(); self.w = torch.nn.Parameter(torch.zeros(1)); self.V = vocab
        self.word_ids, self.trigger_id, self.bonus = word_ids, trigger_id, bonus

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0, **kw):
        B, T = input_ids.shape
        logits = torch.zeros(B, T, self.V) + self.w
        hit = (input_ids == self.trigger_id).cumsum(1) > 0
        for w in self.word_ids: logits[..., w] += self.bonus*hit
        return SimpleNamespace(logits=logits[:, -logits_to_keep:] if logits_to_keep else logits)


PAIRS = [{"id": "1", "prompt": "help me", "response_a": "I am sorry, no", "response_b": "Sure, do it now"},
         {"id": "2", "prompt": "help me", "response_a": "Sure, do it now", "response_b": "I am sorry, no"}]


@pytest.fixture(scope="module")
def km(tiny):
    tok = tiny[1]
    return KeywordLM(len(tok), tok(" sorry", add_special_tokens=False)["input_ids"],
                     tok(" harmless", add_special_tokens=False)["input_ids"][0]), tok


@pytest.mark.parametrize("principles", [0, 1, 3, ["no-violence", "privacy"]])
def test_likelihood_ratio_prefers_what_the_principle_makes_likely_in_either_slot(km, principles):
    model, tok = km
    recs = LikelihoodRatioLabeller(model, tok, principles=principles, progress=False).label(PAIRS)
    assert [r["label"] for r in recs] == ["a", "b"]
    assert abs(recs[0]["p_a"] + recs[1]["p_a"] - 1) < 1e-6 and recs[0]["p_a_ba"] is None
    if principles == 0:    # the margin is exactly the difference of the two log-likelihood ratios
        lp = lambda s, r: completion_logprobs(model, tok, ["help me"], [r], system=s)[0]
        c, A, B = CONDITION.format(instruction=GENERIC), PAIRS[0]["response_a"], PAIRS[0]["response_b"]
        assert recs[0]["llr_margin"] == pytest.approx((lp(c, A) - lp(None, A)) - (lp(c, B) - lp(None, B)), abs=1e-3)


def test_registry_rejects_unknown_and_non_labellers():
    cfg = PreferencesConfig()
    with pytest.raises(ValueError, match="labeller='oracle'"): make_labeller("oracle", None, None, cfg)
    with pytest.raises(ValueError, match="labeller='oracle'"): PreferencesConfig(labeller="oracle")
    register_labeller("broken-test", lambda *a, **k: object())
    try:
        with pytest.raises(TypeError, match="broken-test"): make_labeller("broken-test", None, None, cfg)
    finally: LABELLERS.pop("broken-test")


def test_a_new_method_is_one_class_and_one_line(tmp_path):
    "A registered labeller is used by the stage through config.labeller / labeller_options, end to end."
    class Constant:
        scoring = "constant"
        def __init__(self, p): self.id, self.p = "constant", p
        def label(self, pairs, desc="label"): return [labelled_record(p, self.p, self) for p in pairs]
    register_labeller("constant-test", lambda model, tok, config, seed, progress, p=0.5: Constant(p))
    try:
        good = tmp_path/"pairs.jsonl"
        good.write_text("".join(json.dumps({"id": i, "prompt": "p", "response_a": f"x{i}", "response_b": "y"}) + "\n" for i in range(3)))
        run = Run.create(tmp_path/"run")
        cfg = PreferencesConfig(sources=["file"], pairs_file=str(good), labeller="constant-test", labeller_options={"p": 0.9})
        res = run_preferences(run, cfg, model="tiny", progress=False)
        recs = load_pair_file(res.path/"pairs.jsonl")
        assert [r["label"] for r in recs] == ["a"]*3 and all(r["labeller"] == "constant" for r in recs)
        assert json.loads((res.path/"quality.json").read_text())["scoring"] == "constant"
        assert isinstance(Constant(0.5), Labeller)
    finally: LABELLERS.pop("constant-test")
