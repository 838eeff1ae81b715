"The known-answer check: property checkers, the probe stage's verdicts and guards, and a small pipeline on the embedded model."
import json

import pytest

from cai_workbench.inputs.constitution import load_constitution
from cai_workbench.core.config import ConfigError
from cai_workbench.core.run import Run
from cai_workbench.core.io import write_jsonl
from cai_workbench.pipeline import load_config
from cai_workbench.stages.probe import PROPERTIES, ProbeConfig, get_property, reward_ranking, run_probe, stage_answers
from cai_workbench.inputs.prompts import load_prompts


def _run(tmp_path, k_by_stage, n=20, train=(), text=lambda s, i, k: ("Dear friend, " if i < k else "") + f"answer {i}.", seed=0):
    run = Run.create(tmp_path/"run", seed=seed)
    rows = [{"id": f"{s}:fp:h{i}", "stage": s, "prompt_id": f"h{i}", "prompt": f"Held-out question {i}?", "text": text(s, i, k)}
            for s, k in k_by_stage.items() for i in range(n)]
    (run.path/"evaluation").mkdir()
    write_jsonl(run.path/"evaluation"/"responses.jsonl", rows)
    if train:
        (run.path/"preferences").mkdir()
        write_jsonl(run.path/"preferences"/"pairs.jsonl", [{"prompt": t, "chosen": "a", "rejected": "b"} for t in train])
    return run


def test_every_property_checker_tells_added_from_plain():
    plain = "Put the eggs in cold water, bring it to the boil, then simmer for eight minutes and cool them before peeling."
    for p in PROPERTIES.values():
        assert not p.check(plain) and p.check(p.add(plain)), p.name
    with pytest.raises(ConfigError, match="known"): get_property("nope")


def test_probe_constitution_and_prompts_fit_the_check():
    con, prop = load_constitution("probe"), get_property("dear-friend")
    assert con.names == ["dear-friend"] and con["dear-friend"].revision_request == prop.request
    shot = con.few_shot[0]
    assert not prop.check(shot[1]["content"]) and prop.check(shot[-1]["content"])
    train, held = load_prompts("probe-train"), load_prompts("probe-heldout")
    assert len(train) >= 40 and len(held) >= 30 and not set(train.texts) & set(held.texts)
    cfg, where = load_config("probe")
    cfg.check(where)
    assert cfg.stages[-2:] == ["evaluation", "probe"] and cfg.section("evaluation")["prompts"] == ["probe-heldout"]
    assert {cfg.critique_revision["prompts"], cfg.ppo["prompts"], cfg.rloo["prompts"], cfg.grpo["prompts"]} == {"probe-train"}


def test_probe_says_which_stage_moved(tmp_path):
    res = run_probe(_run(tmp_path, {"base": 1, "sft": 16, "dpo": 4, "ppo": 15}), ProbeConfig(reward_model=False), progress=False)
    st = res.data["stages"]
    assert st["sft"]["moved"] and not st["dpo"]["moved"] and st["ppo"]["moved"]
    assert st["sft"]["rate"] == 0.8 and st["sft"]["rate_n"] == 20 and st["sft"]["rate_diff_ci"][0] > 0
    assert st["ppo"]["start"] == "sft" and not st["ppo"]["fell"]          # not shown to fall, but not shown to rise either
    assert res.data["failed"] == ["dpo", "ppo"] and not res.passed
    assert res.data["why"]["ppo"] == ["not shown to rise over sft (p = 1)"]
    assert "dpo" in res.table() and "FAIL" in res.table()
    saved = json.loads((tmp_path/"run"/"probe"/"summary.json").read_text())
    assert saved["failed"] == ["dpo", "ppo"]


def test_rl_stage_that_loses_the_property_fails_even_above_base(tmp_path):
    res = run_probe(_run(tmp_path, {"base": 0, "sft": 20, "ppo": 8}), ProbeConfig(reward_model=False), progress=False)
    assert res.data["stages"]["ppo"]["moved"] and res.data["stages"]["ppo"]["fell"]
    assert res.data["failed"] == ["ppo"]


def test_newest_answer_per_stage_and_prompt_wins(tmp_path):
    run = _run(tmp_path, {"base": 0, "sft": 0})
    with open(run.path/"evaluation"/"responses.jsonl", "a") as f:   # a rerun with a newer adapter appends
        for i in range(20): f.write(json.dumps({"id": f"sft:new:h{i}", "stage": "sft", "prompt_id": f"h{i}", "prompt": f"Held-out question {i}?", "text": "Dear friend, hi."}) + "\n")
    assert all(r["text"].startswith("Dear") for r in stage_answers(run)["sft"].values())


def test_training_prompt_in_evaluation_is_refused(tmp_path):
    run = _run(tmp_path, {"base": 0, "sft": 20}, train=["held-out   QUESTION 3?"])
    with pytest.raises(ConfigError, match="that training reads"): run_probe(run, ProbeConfig(reward_model=False), progress=False)
    with pytest.raises(ConfigError, match="reward_model"): run_probe(_run(tmp_path/"b", {"base": 0}), ProbeConfig(), progress=False)
    with pytest.raises(ConfigError, match="base"): ProbeConfig(stages=["sft"])


def test_property_judge_is_found_by_name_in_a_fresh_process():
    "evaluation.judges: [probe-dear-friend] must work in a fresh process that imports only the evaluation stage (which imports the probe; the judge registry knows nothing of it)."
    import subprocess, sys
    code = ("import cai_workbench.stages.evaluation; from cai_workbench.judges.rules import get_judge, JudgeContext; j = get_judge('probe-dear-friend'); "
            "print(list(j.metrics), j.judge([{'text': 'Dear friend, yes.'}, {'text': 'No.'}], JudgeContext()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "['dear_friend_rate'] [{'has_property': True}, {'has_property': False}]"


class _RM:
    "A stand-in reward model: +1 for the probe phrase (sign -1: a reward model that learned it backwards)."
    def __init__(self, sign): self.sign = sign
    def score(self, prompts, responses, batch_size=16): return [self.sign*float(r.lower().startswith("dear friend")) for r in responses]


def test_reward_ranking_tells_a_right_from_a_reversed_reward_model(tmp_path):
    answers = stage_answers(_run(tmp_path, {"base": 2}))
    prop = get_property("dear-friend")
    good, margins = reward_ranking(_RM(1), answers, prop)
    bad, _ = reward_ranking(_RM(-1), answers, prop)
    assert (good.value, good.n, bad.value) == (1.0, 18, 0.0)     # the 2 base answers that have the phrase are left out
    assert good.ci[0] > 0.5 > bad.ci[1] and all(m == 1 for m in margins)


@pytest.mark.slow
def test_small_probe_on_the_embedded_model(tmp_path):
    "SL-CAI on the revisions of 32 training prompts raises the phrase's rate on the 32 held-out prompts (DPO: test_dpo_probe_on_the_tiny_model)."
    from cai_workbench.pipeline import PipelineConfig, run_pipeline
    cfg, where = load_config("probe")
    d = cfg.to_dict()
    d["stages"] = ["critique_revision", "sft", "evaluation", "probe"]
    d["critique_revision"]["limit"] = 32
    d["critique_revision"]["generation"]["max_new_tokens"] = 40     # the phrase opens a revision: 40 tokens carry it
    d["sft"]["max_steps"] = 24
    d["evaluation"] |= {"limit": None, "generation": {"max_new_tokens": 12, "batch_size": 32}, "report": False}
    d["probe"] = {"reward_model": False}
    res = run_pipeline(PipelineConfig.from_dict(d, where=where), run_dir=tmp_path/"probe", where=where, progress=False)
    st = res.results["probe"].data["stages"]
    assert st["sft"]["moved"], res.results["probe"].table()


def test_probe_seed_defaults_to_the_runs_and_dpo_must_keep_sft(tmp_path):
    res = run_probe(_run(tmp_path, {"base": 0, "sft": 20, "dpo": 9}, seed=7), ProbeConfig(reward_model=False), progress=False)
    assert res.data["seed"] == 7 and ProbeConfig().seed is None and ProbeConfig(seed=3).seed == 3
    assert res.data["stages"]["dpo"]["start"] == "sft" and res.data["stages"]["dpo"]["fell"]   # DPO starts from SL-CAI by default
    assert res.data["failed"] == ["dpo"]


@pytest.mark.parametrize("flipped", [False, True])
def test_dpo_probe_on_the_tiny_model(tmp_path, flipped):
    """CI-size known answer with DPO (tiny model, offline): DPO on pairs whose chosen answer opens with "Stay safe." (4 distinct
    tiny-model tokens; "Dear friend," repeats one and the 2-layer model cannot write it), then the evaluation and probe stages
    on held-out prompts. DPO must move the rate; with chosen and rejected swapped the probe must report DPO as failed."""
    from cai_workbench.stages.dpo import DPOConfig, run_dpo
    from cai_workbench.stages.evaluation import EvaluationConfig, run_evaluation
    train = load_prompts("probe-train").texts[:16]
    pairs = [dict(id=f"rev:{i}", prompt=q, chosen=f"Stay safe. Here is answer {i}.", rejected=f"Here is answer {i}.",
                  source="revision", label="a", soft_label=1.0, label_source="revision") for i, q in enumerate(train)]
    if flipped: pairs = [dict(p, chosen=p["rejected"], rejected=p["chosen"]) for p in pairs]
    run = Run.create(tmp_path/"run", device="cpu")
    write_jsonl(run.stage_dir("preferences")/"pairs.jsonl", pairs)
    run_dpo(run, DPOConfig(pair_sources=["revision"], max_steps=12, batch_size=4, learning_rate=1e-2), model="tiny", progress=False)
    run_evaluation(run, EvaluationConfig(prompts=["probe-heldout"], limit=12, stages=["base", "dpo"], generation={"max_new_tokens": 8, "batch_size": 12},
                                         judges=["refusal", "probe-stay-safe"], ai_judge=False, pairwise="none", validate_classifier=False,
                                         report=False), model="tiny", progress=False)
    res = run_probe(run, ProbeConfig(property="stay-safe", reward_model=False), progress=False)
    st = res.data["stages"]
    assert st["base"]["rate"] == 0 and st["dpo"]["rate_n"] == 12, res.table()
    assert res.passed != flipped and st["dpo"]["moved"] != flipped, res.table()


def _adapter(run, stage, seed):
    "A stand-in LoRA adapter file for `stage`: the same `seed` gives the same tensors."
    import torch
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(seed)
    (run.path/stage/"adapter").mkdir(parents=True, exist_ok=True)
    save_file({"base_model.model.layers.0.q_proj.lora_A.weight": torch.randn(4, 8, generator=g),
               "base_model.model.layers.0.q_proj.lora_B.weight": torch.randn(8, 4, generator=g)}, str(run.path/stage/"adapter"/"adapter_model.safetensors"))


def _own_text(s, i, k): return ("Dear friend, " if i < k else "") + f"{s} answer {i}."   # each stage words its answers its own way


def test_no_op_stage_fails_the_probe(tmp_path):
    "PPO that changed no answer, and DPO whose adapter is SFT's tensor for tensor, fail with their own reasons; a stage that trained and rose passes."
    same = lambda s, i, k: _own_text("sft" if s == "ppo" else s, i, k)                      # ppo's answers are sft's, word for word
    run = _run(tmp_path, {"base": 0, "sft": 16, "ppo": 16, "dpo": 30, "grpo": 30}, n=32, text=same)
    for s, seed in (("sft", 1), ("dpo", 1), ("grpo", 2)): _adapter(run, s, seed)
    res = run_probe(run, ProbeConfig(reward_model=False), progress=False)
    st = res.data["stages"]
    assert res.data["failed"] == ["dpo", "ppo"] and not res.passed, res.table()
    assert st["ppo"]["same_answers"] and "answers identical to sft's on all 32 prompts: the stage changed nothing" in st["ppo"]["why"]
    assert st["dpo"]["rate"] > st["sft"]["rate"] and st["dpo"]["why"] == ["adapter tensors identical to sft's: the stage did not train"]
    assert st["grpo"]["verdict"] == "pass" and st["grpo"]["p_start"] < 0.05 and not st["grpo"].get("same_adapter")
    assert "FAIL" in res.table() and "adapter tensors identical" in res.verdict() and res.verdict().startswith("probe FAILED")


def test_sft_16_to_rl_10_of_32_fails_and_a_real_rise_passes(tmp_path):
    "The issue's case: SFT 16/32 then PPO 10/32 (-19 points, interval [-36, +1]) passed as 'not shown to fall'; it must fail. 16 -> 28 passes."
    shifted = lambda s, i, k: ("Dear friend, " if 12 <= i < 22 else "") + f"ppo answer {i}." if s == "ppo" else _own_text(s, i, k)  # prompts 12-21: wins 6, loses 12
    res = run_probe(_run(tmp_path, {"base": 0, "sft": 16, "ppo": 10, "rloo": 28}, n=32, text=shifted), ProbeConfig(reward_model=False), progress=False)
    st = res.data["stages"]
    assert not st["ppo"]["fell"] and st["ppo"]["from_start_ci"][1] > 0            # the old rule could not fail it
    assert st["ppo"]["verdict"] == "FAIL" and st["ppo"]["why"][0].startswith("not shown to rise over sft") and st["ppo"]["p_start"] > 0.9
    assert st["rloo"]["verdict"] == "pass" and st["rloo"]["p_start"] < 0.001 and res.data["failed"] == ["ppo"]
    assert 0.35 < st["ppo"]["power"] < 0.45 and 0.35 < st["rloo"]["power"] < 0.45    # +20 points from 50% at n=32: about 40%
    assert "power (+20)" in res.table() and res.data["test"] == {**res.data["test"], "alpha": 0.05, "effect": 0.2, "ceiling": 0.9, "margin": 0.1}


def test_near_the_ceiling_a_stage_must_not_fall_and_must_differ(tmp_path):
    "From SFT at 31/32 (>= 90%) a rise cannot be shown: PPO at 31/32 in its own words passes (non-inferior, 10 points); RLOO at 25/32 fails."
    res = run_probe(_run(tmp_path, {"base": 0, "sft": 31, "ppo": 31, "rloo": 25}, n=32, text=_own_text), ProbeConfig(reward_model=False), progress=False)
    st = res.data["stages"]
    assert st["ppo"]["ceiling"] and st["ppo"]["noninferior"] and st["ppo"]["verdict"] == "pass", res.table()
    assert st["rloo"]["verdict"] == "FAIL" and "at the ceiling" in st["rloo"]["why"][0] and res.data["failed"] == ["rloo"]
    assert 0 < st["ppo"]["power"] <= 1 and "(ceiling)" in res.table()
    same = run_probe(_run(tmp_path/"b", {"base": 0, "sft": 31, "ppo": 31}, n=32), ProbeConfig(reward_model=False), progress=False)
    assert same.data["failed"] == ["ppo"] and "answers identical" in same.data["why"]["ppo"][0]     # at the ceiling it must still differ


def test_failed_probe_is_loud_through_the_cli(tmp_path, capsys):
    "cai-workbench run with a failing probe: the verdict is the last line, the exit code is 1, and the manifest marks the check failed."
    from cai_workbench.cli import main
    run = _run(tmp_path, {"base": 0, "sft": 16, "ppo": 10}, n=32, text=_own_text)
    cfg = tmp_path/"probe.yaml"
    cfg.write_text("name: loud\nmodel: tiny\nstages: [probe]\nprobe:\n  reward_model: false\n")
    assert main(["run", str(cfg), "--run-dir", str(run.path)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("probe FAILED: ppo: not shown to rise over sft"), out[-5:]
    m = json.loads((run.path/"manifest.json").read_text())["stages"]["probe"]
    assert m["status"] == "failed" and m["check"] == "failed" and m["error"] == out[-1] and m["summary"]["passed"] is False
    assert (run.path/"probe"/"summary.json").exists()
    run2 = _run(tmp_path/"ok", {"base": 0, "sft": 16, "ppo": 28}, n=32, text=_own_text)
    assert main(["run", str(cfg), "--run-dir", str(run2.path)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("probe passed")
    assert json.loads((run2.path/"manifest.json").read_text())["stages"]["probe"]["status"] == "done"


def test_a_reward_model_without_an_interval_still_prints():
    "No held-out answer to rank leaves the reward model's interval None: the table, the conclusions and the verdict still print."
    from cai_workbench.stages.probe import ProbeResult
    stage = {"rate": 0.0, "rate_ci": [0.0, 0.1], "rate_n": 8, "rate_diff": 0.0, "rate_diff_ci": [0.0, 0.0]}
    res = ProbeResult({"passed": False, "failed": ["reward model"], "stages": {"base": stage},
                       "reward_model": {"accuracy": None, "accuracy_ci": None, "accuracy_n": 0, "ranks": False}})
    row = res.rows()[-1]
    assert (row["stage"], row["95% CI"], row["n"], row["verdict"]) == ("reward model ranks", "[–]", 0, "FAIL")
    assert any("reward model" in line and "[–]" in line for line in res.conclusions())
