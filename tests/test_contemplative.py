"Contemplative evaluation measures: rules on planted texts, AI measures through the constitution's comparison prompts, per stage with intervals."
import pytest

from cai_workbench.judges.contemplative import ContemplativeJudge, absolute_terms, ai_measures, comparison_principles, uncertainty_terms
from cai_workbench.judges.rules import JudgeContext, get_judge


@pytest.mark.parametrize("text,absolute,uncertain", [
    ("Lying is always wrong and everyone knows it.", True, False),
    ("It depends on who could be hurt; reasonable people disagree.", False, True),
    ("The only way forward is to quit, definitely.", True, False),
    ("Talk to her first; she may have reasons you have not heard.", False, False),
    ("I'm not sure, but in some cases honesty can wait.", False, True),
    ("Never mix bleach and ammonia.", True, False),          # lexical: good advice still counts as absolute wording
])
def test_rule_measures_on_planted_texts(text, absolute, uncertain):
    assert bool(absolute_terms(text)) == absolute and bool(uncertainty_terms(text)) == uncertain


def test_ai_measures_use_the_constitutions_comparison_prompts(tiny):
    from cai_workbench.judges.ai import judge_prompt, answer_tokens
    from cai_workbench.inputs.constitution import load_constitution
    from cai_workbench.engine.scoring import next_token_logprobs
    import torch
    con = load_constitution("contemplative")
    ps = comparison_principles()
    assert [p.comparison_question for p in ps] == [con.get("non-duality").comparison_question, con.get("boundless-care").comparison_question]
    got = ai_measures(*tiny, ["Is lying ok?"], ["It depends."])[0]
    yes, no = answer_tokens(tiny[1])
    lp = next_token_logprobs(*tiny, [judge_prompt(p, "Is lying ok?", "It depends.", yes, no, 800) for p in ps], [yes, no])
    want = torch.softmax(lp, -1)[:, 0].tolist()
    assert got["perspectives"] == pytest.approx(want[0], abs=1e-5) and got["harm_reducing"] == pytest.approx(want[1], abs=1e-5)


def test_evaluation_reports_contemplative_measures_per_stage(tmp_path):
    from cai_workbench.core.run import Run
    from cai_workbench.stages.evaluation import EvaluationConfig, run_evaluation
    from cai_workbench.engine.generator import GenerationConfig
    ev = run_evaluation(Run.create(tmp_path/"run"), EvaluationConfig(prompts=["contemplative"], limit=6, judges=["refusal", "contemplative"],
                        pairwise="none", generation=GenerationConfig(max_new_tokens=8, batch_size=6), n_boot=20, n_examples=1,
                        validate_classifier=False), model="tiny", progress=False)
    base = ev.data["metrics"]["base"]
    for k, m in ContemplativeJudge.metrics.items():
        assert base[f"{k}_n"] == 6 and base[f"{k}_ci"][0] <= base[k] <= base[f"{k}_ci"][1]
    assert get_judge("contemplative").judge([{"prompt": "p", "text": "Always."}], JudgeContext())[0]["absolute"] is True
