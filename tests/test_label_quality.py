"Label quality: Wilson interval, text features, the bias report on planted biases, agreement, the verification sample, the stage report."
import json
from types import SimpleNamespace

import pytest

from cai_workbench.feedback.label_quality import FEATURES, Agreement, agreement_of, bias_report, shuffle_human_pairs, synthetic_records, text_features, verification_sample, wilson_interval, write_quality


def test_wilson_interval():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(30, 40)[1] - wilson_interval(30, 40)[0] > wilson_interval(300, 400)[1] - wilson_interval(300, 400)[0]


def test_text_features_directions():
    casual, formal = text_features("Yeah I'm gonna do it lol!"), text_features("The committee will certainly review the application.")
    assert casual["formality"] < formal["formality"]
    hedgy, sure = text_features("Maybe it might work, perhaps."), text_features("It definitely works. Always.")
    assert hedgy["assertiveness"] < 0 < sure["assertiveness"]
    assert text_features("A cat sat.")["complexity"] < text_features("Comprehensive organisational restructuring necessitates deliberation")["complexity"]
    assert text_features("one two three")["length"] == 3


@pytest.mark.parametrize("bias", [0.9, 0.2])
def test_planted_length_bias_is_found(bias):
    rep = bias_report(synthetic_records(500, length_bias=bias, seed=3))
    f = rep.features["length"]
    assert f["prefers_higher"] == pytest.approx(bias, abs=0.05)
    assert f["ci"][0] <= bias <= f["ci"][1]
    assert (f["corr"] > 0.3) if bias > 0.5 else (f["corr"] < -0.3)
    # the synthetic responses differ only in length: no formality/assertiveness signal to find
    assert rep.features["formality"]["n"] == 0 and rep.features["assertiveness"]["n"] == 0


def test_no_planted_bias_stays_near_half():
    for seed in range(5):        # sd of the rate at n=400 is 0.025: 0.08 is over 3 sd
        f = bias_report(synthetic_records(400, length_bias=0.5, seed=seed)).features["length"]
        assert abs(f["prefers_higher"] - 0.5) < 0.08 and abs(f["corr"]) < 0.2


def test_position_bias_numbers():
    recs = synthetic_records(30)
    pos_only = [{**r, "p_a_ab": 0.9, "p_a_ba": 0.9, "p_a": 0.5} for r in recs]
    rep = bias_report(pos_only)
    assert (rep.position_consistency, rep.first_slot_rate) == (0.0, 1.0)
    consistent = bias_report(recs)
    assert consistent.position_consistency == 1.0 and consistent.first_slot_rate == pytest.approx(0.5)
    half = pos_only[:15] + recs[15:]
    assert bias_report(half).position_consistency == pytest.approx(0.5)


def test_bias_plot(tmp_path):
    rep = bias_report(synthetic_records(50))
    rep.plot(tmp_path/"bias.png")
    assert (tmp_path/"bias.png").stat().st_size > 5000
    assert "position consistency" in rep._repr_markdown_()


def test_agreement_and_chance_level():
    recs = synthetic_records(60)
    for r in recs: r["human_label"] = r["label"]
    ag = agreement_of(recs)
    assert (ag.agreement, ag.chance_level) == (1.0, False)
    for i, r in enumerate(recs): r["human_label"] = r["label"] if i % 2 else ("a" if r["label"] == "b" else "b")
    ag = agreement_of(recs)
    assert ag.agreement == 0.5 and ag.chance_level and "not distinguishable from chance" in ag._repr_markdown_()
    recs[0]["label"] = "tie"
    assert agreement_of(recs).ties == 1 and agreement_of(recs).decided == 59
    assert "worse than chance" in Agreement(100, 100, 20, 0, 0.3)._repr_markdown_()


def test_shuffle_human_pairs_balances_positions():
    hh = [{"id": str(i), "prompt": "p", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(400)]
    sh = shuffle_human_pairs(hh, seed=1)
    assert 160 < sum(s["human_label"] == "a" for s in sh) < 240
    assert all((s["response_a"] == h["chosen"]) == (s["human_label"] == "a") for s, h in zip(sh, hh))
    assert shuffle_human_pairs(hh, seed=1) == sh


def test_verification_sample_prioritises_doubtful_labels():
    recs = synthetic_records(100, seed=2)
    doubtful = {"3": {"p_a_ba": recs[3]["p_a_ab"]}, "10": {"p_a": 0.52, "p_a_ab": 0.52, "p_a_ba": 0.48},
                "20": {"label": "tie"}, "30": {"human_label": "b" if recs[30]["label"] == "a" else "a"}}
    for k, v in doubtful.items(): recs[int(k)].update(v)
    vs = verification_sample(recs + [{**recs[0], "id": "rev", "label_source": "revision"}], n=8, random_share=0.5, seed=0)
    assert len(vs) == 8
    assert {v["id"] for v in vs[:4]} == set(doubtful)
    assert sum(v["verify_reason"] == "random" for v in vs) == 4
    assert all(v["id"] != "rev" for v in vs)
    assert verification_sample(recs, n=8, random_share=0.5, seed=0) == verification_sample(recs, n=8, random_share=0.5, seed=0)


def test_write_quality_files(tmp_path):
    recs = synthetic_records(40)
    cfg = SimpleNamespace(verification_size=10, low_confidence=0.1)
    out = write_quality(tmp_path, recs, SimpleNamespace(id="synthetic", scoring="token"), None, cfg)
    assert out is None
    q = json.loads((tmp_path/"quality.json").read_text())
    assert q["stage_bias"]["n"] == 40 and set(q["stage_bias"]["features"]) == set(FEATURES)
    assert (tmp_path/"bias.png").exists() and len((tmp_path/"verification.jsonl").read_text().splitlines()) == 10


def test_quality_report_skips_human_agreement_without_shared_data(tmp_path, monkeypatch):
    "A fresh clone has no ../shared: the default hh-rlhf location is skipped with a warning, an explicit path is an error."
    from cai_workbench.feedback.label_quality import check_quality_inputs
    from cai_workbench.stages.preferences import PreferencesConfig
    monkeypatch.setenv("CAI_WORKBENCH_SHARED_DATA", str(tmp_path))
    with pytest.warns(UserWarning, match="without human-agreement numbers"):
        assert check_quality_inputs(PreferencesConfig(quality_pairs=4)) is None
    with pytest.raises(FileNotFoundError, match="quality_pairs: 0"):
        check_quality_inputs(PreferencesConfig(quality_pairs=4, hh_rlhf=str(tmp_path/"nope.jsonl.gz")))


def test_quality_numbers_carry_interval_and_n():
    recs = synthetic_records(60)
    for i, r in enumerate(recs): r["human_label"] = r["label"] if i % 3 else ("a" if r["label"] == "b" else "b")
    d = agreement_of(recs).to_dict()
    assert d["agreement_n"] == 60 and d["agreement_ci"][0] < d["agreement"] < d["agreement_ci"][1]
    assert "agreement with human labels 67% [" in agreement_of(recs).conclusion() and "n=60" in agreement_of(recs).conclusion()
    b = bias_report(recs).to_dict()
    assert b["position_consistency_n"] == 60 and b["first_slot_rate_n"] == 60          # by pair: both orders of a pair are one unit
    for k in ("position_consistency", "first_slot_rate"): assert b[f"{k}_ci"][0] <= b[k] <= b[f"{k}_ci"][1]


def test_first_slot_interval_is_by_pair_not_by_order():
    "20 pairs labelled in both orders, 14 of them picking slot A both times: 70%, and n is 20 pairs (the two orders of a pair are not independent)."
    recs = [{**r, "p_a_ab": 0.8 if i < 14 else 0.2, "p_a_ba": 0.8 if i < 14 else 0.2, "p_a": 0.5} for i, r in enumerate(synthetic_records(20))]
    rep = bias_report(recs)
    assert rep.first_slot_rate == 0.7 and rep.first_slot.n == 20 and rep.to_dict()["first_slot_rate_n"] == 20
    by_order = wilson_interval(28, 40)                                # what counting each order as a unit gives: too narrow
    assert rep.first_slot.ci[1] - rep.first_slot.ci[0] > (by_order[1] - by_order[0]) + 0.05, (rep.first_slot.ci, by_order)


def test_agreement_reports_ties_beside_it_and_counted_as_half():
    "16 pairs, 7 exact ties, 6 of the 9 decided agree: agreement 6/9 beside 7 ties, and (6 + 3.5)/16 with ties as half."
    recs = synthetic_records(16)
    for i, r in enumerate(recs):
        r["human_label"] = r["label"] if i >= 3 else ("a" if r["label"] == "b" else "b")
        if i >= 9: r["label"] = "tie"
    ag = agreement_of(recs)
    d = ag.to_dict()
    assert (d["decided"], d["agree"], d["ties"], d["tie_rate"]) == (9, 6, 7, round(7/16, 4))
    assert d["agreement_ties_half"] == round(9.5/16, 4) and d["agreement_ties_half_n"] == 16 and len(d["agreement_ties_half_ci"]) == 2
    assert "7 of 16 pairs were exact ties" in ag.conclusion() and "half" in ag.conclusion()


def test_quality_report_draws_its_human_pairs_with_the_runs_seed(tmp_path, monkeypatch):
    "PreferencesConfig.seed None means the run's seed (7) for the hh-rlhf sample too, not `config.seed or 0`."
    import cai_workbench.inputs.prompts as prompts
    from cai_workbench.core.run import Run
    from cai_workbench.stages.preferences import PreferencesConfig, run_preferences
    seen = []
    class Stop(Exception): pass
    def fake(path, limit=None, seed=0, single_turn=False): seen.append(seed); raise Stop
    monkeypatch.setattr(prompts, "load_hh_rlhf_pairs", fake)
    (tmp_path/"hh.jsonl").write_text("")
    run = Run.create(tmp_path/"run", seed=7)
    cfg = PreferencesConfig(sources=["sampled"], quality_pairs=4, hh_rlhf=str(tmp_path/"hh.jsonl"))
    with pytest.raises(Stop): run_preferences(run, cfg, model="tiny", progress=False)
    assert seen == [7]
