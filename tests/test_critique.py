"Critique-revision stage: history shape, rounds, early stop, resume after a kill, bad input, outputs, and the viewer."
import json, os, re, signal, subprocess, sys, textwrap, time
from pathlib import Path

import pytest

from cai_workbench.core.config import ConfigError
from cai_workbench.core.run import Run
from cai_workbench.stages.critique_revision import CritiqueRevisionConfig, few_shot_messages, load_critique_result, principle_seed, run_critique_revision
from cai_workbench.ui.critique_viewer import ALL, CritiqueViewer, record_html
from cai_workbench.inputs.constitution import load_constitution
from cai_workbench.engine.generator import GenerationConfig

PROMPTS = [("How do I pick a lock?", "harmful"), ("Write a haiku about rain.", "benign"),
           ("How can I make a weapon at home?", "harmful"), ("Explain how vaccines work.", "benign"),
           ("How do I steal a car?", "harmful"), ("Plan a day in Rome.", "benign")]


def write_prompts(path: Path, n: int = len(PROMPTS)) -> Path:
    rows = [{"id": f"p{i}", "prompt": PROMPTS[i % len(PROMPTS)][0] + ("" if i < len(PROMPTS) else f" (variant {i})"),
             "label": PROMPTS[i % len(PROMPTS)][1], "category": "test"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def small(path, **kw) -> CritiqueRevisionConfig:
    gen = GenerationConfig(max_new_tokens=kw.pop("max_new_tokens", 8), temperature=kw.pop("temperature", 1.0), batch_size=kw.pop("batch_size", 8))
    return CritiqueRevisionConfig(prompts=str(path), use_few_shot=kw.pop("use_few_shot", False), converged_pattern=kw.pop("converged_pattern", ""),
                          generation=gen, **kw)


def test_history_shape_and_outputs(tmp_path, tiny):
    run = Run.create(tmp_path/"run")
    res = run_critique_revision(run, small(write_prompts(tmp_path/"p.jsonl"), rounds=3), model=tiny, progress=False)
    d = run.path/"critique_revision"
    recs = [json.loads(l) for l in (d/"records.jsonl").read_text().splitlines()]
    assert [r["id"] for r in recs] == [f"p{i}" for i in range(6)] and recs == res.records
    names = load_constitution("harmless").names
    for r in recs:
        assert r["stop_reason"] == "rounds" and r["n_rounds"] == 3
        assert [x["round"] for x in r["rounds"]] == [1, 2, 3]
        assert all(x["principle"] in names and isinstance(x["critique"], str) and isinstance(x["revision"], str) for x in r["rounds"])
        assert r["final_response"] == r["rounds"][-1]["revision"]
        assert r["critique_tokens"] == sum(x["critique_tokens"] for x in r["rounds"]) > 0
        assert r["total_tokens"] == r["initial_tokens"] + r["critique_tokens"] + r["revision_tokens"]
        assert r["label"] in ("harmful", "benign") and r["category"] == "test"
    # principles are the seeded draws for (seed, id, round)
    con = load_constitution("harmless")
    assert recs[2]["principles"] == [con.sample(principle_seed(0, "p2", k))[0].name for k in (1, 2, 3)]
    sft = [json.loads(l) for l in (d/"sft.jsonl").read_text().splitlines()]
    assert sft[1]["messages"] == [{"role": "user", "content": recs[1]["prompt"]}, {"role": "assistant", "content": recs[1]["final_response"]}]
    assert sft[1]["prompt"] == sft[1]["messages"][:1] and sft[1]["completion"] == sft[1]["messages"][1:]
    from datasets import load_from_disk
    ds = load_from_disk(str(d/"dataset"))
    assert len(ds) == 6 and ds[0]["rounds"][2]["round"] == 3
    assert res.summary()["prompts"] == 6 and res.summary()["mean_rounds"] == 3.0
    assert load_critique_result(run).records == recs
    assert "critique-revision" in res._repr_markdown_()


def test_each_step_is_one_batched_call(tmp_path, tiny, monkeypatch):
    "Generation goes through Generator.generate once per step for all active prompts (no per-prompt loop)."
    from cai_workbench.engine.generator import Generator
    calls = []
    orig = Generator.generate
    def spy(self, prompts, *a, **k):
        calls.append((k.get("desc"), len(prompts))); return orig(self, prompts, *a, **k)
    monkeypatch.setattr(Generator, "generate", spy)
    run_critique_revision(Run.create(tmp_path/"r"), small(write_prompts(tmp_path/"p.jsonl"), rounds=2), model=tiny, progress=False)
    assert calls == [("initial", 6), ("round 1 critique", 6), ("round 1 revision", 6), ("round 2 critique", 6), ("round 2 revision", 6)]


def test_early_stop_on_converged_critique(tmp_path, tiny):
    p = write_prompts(tmp_path/"p.jsonl")
    base = run_critique_revision(Run.create(tmp_path/"a"), small(p, rounds=2), model=tiny, progress=False)
    crit = base.records[3]["rounds"][0]["critique"]
    conv = run_critique_revision(Run.create(tmp_path/"b"), small(p, rounds=2, converged_pattern="^" + re.escape(crit) + "$"),
                                 model=tiny, progress=False)
    r = conv.records[3]
    assert (r["stop_reason"], r["n_rounds"], r["rounds"][0]["revision"], r["revision_tokens"]) == ("converged", 1, None, 0)
    assert r["final_response"] == r["initial_response"]
    assert [x["stop_reason"] for i, x in enumerate(conv.records) if i != 3] == ["rounds"]*5
    # all converge with a pattern that matches anything: one critique each, no revision step generated
    allc = run_critique_revision(Run.create(tmp_path/"c"), small(p, rounds=3, converged_pattern="^"), model=tiny, progress=False)
    assert all(x["stop_reason"] == "converged" and x["n_rounds"] == 1 for x in allc.records)
    steps = next((tmp_path/"c"/"critique_revision"/"steps").iterdir())
    assert sorted(f.name for f in steps.glob("*.jsonl")) == ["initial.jsonl", "r1_critique.jsonl"]


def test_default_converged_rule():
    c = CritiqueRevisionConfig()
    for t in ["There are no issues with this response.", "NO PROBLEMS here", "No changes are needed.",
              "Nothing to fix.", "The answer is already harmless."]:
        assert c.is_converged(t), t
    for t in ["The response explains how to build a weapon; it should refuse.", "Several issues: ...", ""]:
        assert not c.is_converged(t), t


def test_critique_free_and_principle_subset(tmp_path, tiny):
    res = run_critique_revision(Run.create(tmp_path/"r"), small(write_prompts(tmp_path/"p.jsonl"), rounds=2, critique_free=True,
                                principles=["no-violence", "privacy"]), model=tiny, progress=False)
    keep = {"no-violence", "privacy"}
    for r in res.records:
        assert all(x["critique"] is None and x["critique_tokens"] == 0 and x["revision"] is not None for x in r["rounds"])
        assert set(r["principles"]) <= keep


def test_few_shot_is_prepended(tmp_path, tiny):
    con = load_constitution("harmless")
    assert con.few_shot or any(p.few_shot for p in con.principles), "the default constitution should carry few-shot examples"
    shots = few_shot_messages(con, con.principles[0], CritiqueRevisionConfig(max_few_shot=1))
    assert shots and shots[0]["role"] in ("user", "system")
    p = write_prompts(tmp_path/"p.jsonl", 2)
    toks = {}
    for fs in (False, True):
        run_critique_revision(Run.create(tmp_path/f"r{fs}"), small(p, use_few_shot=fs), model=tiny, progress=False)
        steps = next((tmp_path/f"r{fs}"/"critique_revision"/"steps").iterdir())
        toks[fs] = [json.loads(l)["prompt_tokens"] for l in (steps/"r1_critique.jsonl").read_text().splitlines()]
    assert min(toks[True]) > max(toks[False])


def test_hf_constitution_file(tmp_path, tiny, shared):
    path = shared("hf_cai/constitution_anthropic.json")
    res = run_critique_revision(Run.create(tmp_path/"r"), small(write_prompts(tmp_path/"p.jsonl", 3), constitution=str(path)),
                                model=tiny, progress=False)
    assert all(x["principle"] in load_constitution(str(path)).names for r in res.records for x in r["rounds"])


@pytest.mark.parametrize("content,cfg,match", [
    (None, {}, "an existing file"),
    ("", {}, "empty"),
    ('{"prompt": "ok"}\n{"prompt": "unterminated\n', {}, "line 2"),
    ("valid", {"principles": ["no-such-principle"]}, "no-such-principle"),
    ("valid", {"constitution": "no-such-constitution"}, "no-such-constitution"),
    ("valid", {"constitution": "BADCON"}, "critique_request"),
])
def test_bad_input_fails_before_any_work(tmp_path, tiny, content, cfg, match):
    p = tmp_path/"prompts.jsonl"
    if content == "valid": write_prompts(p)
    elif content is not None: p.write_text(content)
    if cfg.get("constitution") == "BADCON":
        bad = tmp_path/"bad.yaml"
        bad.write_text("name: bad\nprinciples:\n  - name: x\n    revision_request: Rewrite it.\n")
        cfg = {"constitution": str(bad)}
    run = Run.create(tmp_path/"run")
    with pytest.raises(ValueError, match=re.escape(match)):
        run_critique_revision(run, small(p, **cfg), model=tiny, progress=False)
    assert not (run.path/"critique_revision").exists()
    assert "critique_revision" not in run.manifest["stages"]


def test_bad_config_values():
    with pytest.raises(ConfigError, match="rounds"): CritiqueRevisionConfig.from_dict({"rounds": 0})
    with pytest.raises(ConfigError, match="converged_pattern"): CritiqueRevisionConfig(converged_pattern="(")
    with pytest.raises(ConfigError, match="limit"): CritiqueRevisionConfig(limit=0)


KILLED = textwrap.dedent("""
    import sys
    from cai_workbench.core.run import Run
    from cai_workbench.stages.critique_revision import CritiqueRevisionConfig, run_critique_revision
    from cai_workbench.engine.generator import GenerationConfig
    cfg = CritiqueRevisionConfig(prompts=sys.argv[2], rounds=3, use_few_shot=False, converged_pattern="",
                         generation=GenerationConfig(max_new_tokens=12, temperature=1.0, batch_size=2))
    run_critique_revision(Run.create(sys.argv[1]), cfg, model="tiny", progress=False)
""")


def test_resume_after_kill(tmp_path):
    "SIGKILL the stage mid-run, rerun: finished steps are read back (not regenerated) and each id appears once."
    p = write_prompts(tmp_path/"p.jsonl", 24)
    rd = tmp_path/"run"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(rd), str(p)], env=env)
    t0, crit = time.time(), None
    while time.time() - t0 < 120 and proc.poll() is None:
        steps = list((rd/"critique_revision"/"steps").glob("*/r1_critique.jsonl"))
        if steps and len(steps[0].read_text().splitlines()) >= 4: crit = steps[0]; break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL); proc.wait()
    assert crit is not None, "the stage finished or stalled before it could be killed mid-run"
    assert not (rd/"critique_revision"/"records.jsonl").exists()
    assert Run(rd).stage_info("critique_revision")["status"] == "running"
    before_initial = (crit.parent/"initial.jsonl").read_text()
    before_crit = crit.read_text().splitlines()
    before_crit = before_crit if crit.read_text().endswith("\n") else before_crit[:-1]
    from cai_workbench.core.run import Run as R
    cfg = CritiqueRevisionConfig(prompts=str(p), rounds=3, use_few_shot=False, converged_pattern="",
                         generation=GenerationConfig(max_new_tokens=12, temperature=1.0, batch_size=2))
    res = run_critique_revision(R(rd), cfg, model="tiny", progress=False)
    assert (crit.parent/"initial.jsonl").read_text() == before_initial          # nothing regenerated
    assert crit.read_text().splitlines()[:len(before_crit)] == before_crit      # kept what was written
    for f in crit.parent.glob("*.jsonl"):
        ids = [json.loads(l)["id"] for l in f.read_text().splitlines()]
        assert len(ids) == len(set(ids)) == 24, f.name
    lines = (rd/"critique_revision"/"records.jsonl").read_text().splitlines()
    assert sorted(json.loads(l)["id"] for l in lines) == sorted(f"p{i}" for i in range(24))
    by_id = {json.loads(l)["id"]: json.loads(l) for l in crit.read_text().splitlines()}
    assert all(r["rounds"][0]["critique"] == by_id[r["id"]]["text"] for r in res.records)
    assert Run(rd).is_done("critique_revision")


def test_viewer_over_stage_records(tmp_path, tiny):
    res = run_critique_revision(Run.create(tmp_path/"r"), small(write_prompts(tmp_path/"p.jsonl"), rounds=2), model=tiny, progress=False)
    evil = {**res.records[0], "id": "evil", "prompt": "<script>alert(1)</script>", "initial_response": "<img src=x onerror=alert(1)>",
            "final_response": "I can't help with that.", "stop_reason": "converged"}
    v = CritiqueViewer(res.records + [evil])
    assert len(v.filtered) == 7 and res.records[0]["prompt"] in v.html.value
    v.slider.value = 3
    assert v.pick.value == 3 and re.escape(res.records[3]["id"]) and res.records[3]["prompt"] in v.html.value
    v.stop.value = "converged"
    assert [r["id"] for r in v.filtered] == ["evil"]
    h = v.html.value
    assert "<script>" not in h and "<img" not in h and "&lt;script&gt;" in h and "&lt;img src=x onerror=alert(1)&gt;" in h
    assert '<del class="cai-del">' in h and '<ins class="cai-ins">' in h
    v.stop.value = ALL
    pr = res.records[1]["principles"][0]
    v.principle.value = pr
    assert v.filtered and all(pr in r["principles"] for r in v.filtered)
    assert len(v.filtered) == sum(pr in r["principles"] for r in res.records) + (pr in evil["principles"])
    v2 = CritiqueViewer.from_run(Run(tmp_path/"r")).show("p4")
    assert v2.current["id"] == "p4" and v2.slider.value == 4
    assert "Round 2" in record_html(res.records[0])
    assert isinstance(res.viewer(), CritiqueViewer) and len(res.viewer().filtered) == 6


@pytest.mark.slow
def test_embedded_model_revises(tmp_path, embedded):
    cfg = CritiqueRevisionConfig(prompts="demo", limit=2, generation=GenerationConfig(max_new_tokens=24))
    res = run_critique_revision(Run.create(tmp_path/"r"), cfg, model=embedded, progress=False)
    assert len(res.records) == 2
    for r in res.records:
        assert r["initial_response"].strip() and r["rounds"][0]["critique"].strip()
        assert r["stop_reason"] == "converged" or r["final_response"].strip()


# -- revision gate, judged convergence and SFT data filters (issue 17 §2 §3)

def test_gate_keeps_only_preferred_revisions(tmp_path, tiny):
    "Each round's gate numbers are in the record; a refused revision leaves the previous response and stops as rejected."
    from cai_workbench.stages.revision_gate import gate_revisions
    p = write_prompts(tmp_path/"p.jsonl")
    res = run_critique_revision(Run.create(tmp_path/"run"), small(p, rounds=2, gate=True, gate_margin=0.0), model=tiny, progress=False)
    seen = {True: 0, False: 0}
    for r in res.records:
        prev = r["initial_response"]
        for x in r["rounds"]:
            g = x["gate"]
            assert g["accepted"] == (g["p_revision"] >= 0.5) and abs(g["p_revision"] - (g["p_revision_ab"] + g["p_revision_ba"])/2) < 1e-5
            seen[g["accepted"]] += 1
            if g["accepted"]: prev = x["revision"]
            else: assert r["stop_reason"] == "rejected" and x is r["rounds"][-1]
        assert r["final_response"] == prev
    # the numbers are the feedback model's comparison of the revision with the response it revised
    r0 = res.records[0]; con = load_constitution("harmless")
    again = gate_revisions(*tiny, [con.get(r0["rounds"][0]["principle"])], [r0["prompt"]], [r0["rounds"][0]["revision"]],
                           [r0["initial_response"]], 0.0)[0]
    assert abs(again["p_revision"] - r0["rounds"][0]["gate"]["p_revision"]) < 1e-4
    s = res.summary()
    assert s["gate_accepted"] == seen[True] and s["gate_rejected"] == seen[False] and s.get("rejected", 0) == sum(
        r["stop_reason"] == "rejected" for r in res.records)
    # a margin no revision can reach rejects every first revision
    strict = run_critique_revision(Run.create(tmp_path/"strict"), small(p, rounds=2, gate=True, gate_margin=0.4999), model=tiny, progress=False)
    assert all(r["stop_reason"] == "rejected" and r["n_rounds"] == 1 and r["final_response"] == r["initial_response"] for r in strict.records)
    assert strict.summary()["rejected"] == 6 and strict.summary()["gate_accepted"] == 0


def test_judged_convergence_threshold_and_min_improvement(tmp_path, tiny):
    p = write_prompts(tmp_path/"p.jsonl")
    # every P(violates) is below 0.9999: each prompt stops before its first critique, with nothing generated
    sat = run_critique_revision(Run.create(tmp_path/"sat"), small(p, rounds=2, violation_threshold=0.9999), model=tiny, progress=False)
    for r in sat.records:
        assert r["stop_reason"] == "satisfied" and r["n_rounds"] == 1 and r["rounds"][0]["skipped"] and r["rounds"][0]["critique"] is None
        assert 0 < r["rounds"][0]["violation_before"] < 0.9999 and r["final_response"] == r["initial_response"]
    # no round lowers P(violates) by 0.99: every prompt stops after one revision, which it keeps
    imp = run_critique_revision(Run.create(tmp_path/"imp"), small(p, rounds=3, min_improvement=0.99), model=tiny, progress=False)
    for r in imp.records:
        x = r["rounds"][0]
        assert r["stop_reason"] == "no_improvement" and r["n_rounds"] == 1 and r["final_response"] == x["revision"]
        assert {"violation_before", "violation_after"} <= set(x)
    assert imp.summary()["no_improvement"] == 6
    with pytest.raises(ConfigError, match="violation_threshold"): CritiqueRevisionConfig(violation_threshold=0)


def test_sft_data_filters_drop_duplicates_and_report(tmp_path, tiny):
    rows = [{"id": "a", "prompt": "How do I pick a lock?", "label": "harmful"}, {"id": "b", "prompt": "how do I  pick a LOCK?", "label": "harmful"},
            {"id": "c", "prompt": "Plan a day in Rome.", "label": "benign"}]
    run = Run.create(tmp_path/"run")
    cfg = small(tmp_path/"unused", rounds=1)
    cfg = cfg.replace(filters=cfg.filters.replace(empty=False))   # the random tiny model may answer nothing: test duplicates alone
    res = run_critique_revision(run, cfg, model=tiny, prompts=rows, progress=False)
    d = run.path/"critique_revision"
    by = {r["id"]: r["dropped_by"] for r in res.records}
    assert by == {"a": None, "b": "exact_duplicate", "c": None}
    assert [json.loads(l)["id"] for l in (d/"sft.jsonl").read_text().splitlines()] == ["a", "c"]
    q = json.loads((d/"quality.json").read_text())["data_filters"]
    assert q["counts"]["exact_duplicate"] == 1 and q["kept"] == 2 and q["examples"]["exact_duplicate"][0]["id"] == "b"
    assert res.summary()["sft_examples"] == 2 and res.summary()["sft_dropped"] == 1
    # switched off: all three are SFT examples
    off = run_critique_revision(Run.create(tmp_path/"off"), cfg.replace(
        filters=cfg.filters.replace(exact_duplicates=False, near_duplicates=False)), model=tiny, prompts=rows, progress=False)
    assert off.summary()["sft_examples"] == 3


def test_benign_prompts_keep_their_answer_or_get_helpfulness_principles(tmp_path, tiny):
    p = write_prompts(tmp_path/"p.jsonl")
    res = run_critique_revision(Run.create(tmp_path/"a"), small(p, benign="answer"), model=tiny, progress=False)
    for r in res.records:
        if r["label"] == "benign":     # the plain answer is the SL-CAI target: no critique, no revision
            assert r["stop_reason"] == "benign_answer" and r["rounds"] == [] and r["final_response"] == r["initial_response"]
        else: assert r["stop_reason"] == "rounds" and r["n_rounds"] == 1
    assert res.summary()["benign_answer"] == 3 and res.summary()["benign"] == "answer"
    sft = [json.loads(l) for l in (tmp_path/"a"/"critique_revision"/"sft.jsonl").read_text().splitlines()]
    by = {r["id"]: r for r in res.records}
    assert all(s["completion"][0]["content"] == by[s["id"]]["final_response"] for s in sft)
    hhh = load_constitution("hhh")
    helpful = {x.name for x in hhh.principles if x.category == "helpfulness"}
    res = run_critique_revision(Run.create(tmp_path/"h"), small(p, benign="helpful", constitution="hhh", rounds=2), model=tiny, progress=False)
    for r in res.records:
        assert (set(r["principles"]) <= helpful) == (r["label"] == "benign") and r["n_rounds"] == 2
    with pytest.raises(ConfigError, match="helpfulness"):      # harmless has no helpfulness principle: fails before any work
        run_critique_revision(Run.create(tmp_path/"x"), small(p, benign="helpful"), model=tiny, progress=False)
    assert not (tmp_path/"x"/"critique_revision").exists()
    run = Run.create(tmp_path/"s")      # 'answer' skips benign prompts like a smaller limit: it reuses a 'revise' run's steps
    run_critique_revision(run, small(p), model=tiny, progress=False)
    again = run_critique_revision(run, small(p, benign="answer"), model=tiny, progress=False)
    assert len(list((run.path/"critique_revision"/"steps").iterdir())) == 1 and again.summary()["benign_answer"] == 3


def test_commentary_drop_keeps_only_rewrites():
    "commentary='drop': a revision that talks about the answer is no SFT target; a rewrite, and an unrevised answer, are."
    from cai_workbench.stages.critique_revision import _sft_filtered
    recs = [{"id": "a", "prompt": "How do I pick a lock?", "label": "harmful", "final_response": "The answer explains lock picking.", "n_rounds": 1,
             "initial_response": "Use a tension wrench.", "rounds": [], "principles": []},
            {"id": "b", "prompt": "How do I steal a car?", "label": "harmful", "final_response": "I can't help with stealing a car.", "n_rounds": 1,
             "initial_response": "Hotwire it.", "rounds": [], "principles": []},
            {"id": "c", "prompt": "Plan a day in Rome.", "label": "benign", "final_response": "This response is not a revision: the first answer.",
             "n_rounds": 0, "initial_response": "This response is not a revision: the first answer.", "rounds": [], "principles": []}]
    keep, _ = _sft_filtered(CritiqueRevisionConfig(), [dict(r) for r in recs])
    assert [r["id"] for r in keep] == ["a", "b", "c"]
    drop_recs = [dict(r) for r in recs]
    drop, _ = _sft_filtered(CritiqueRevisionConfig(commentary="drop"), drop_recs)
    assert [r["id"] for r in drop] == ["b", "c"] and [r["dropped_by"] for r in drop_recs] == ["commentary", None, None]


def test_revision_prefix_opens_non_benign_revisions_and_the_model_continues_it(tmp_path, tiny):
    "revision_prefix: the model is given the opening words (a prefill) and continues them; benign prompts are not touched."
    p, opening = write_prompts(tmp_path/"p.jsonl"), "I can't help with that."
    cfg = lambda **kw: small(p, critique_free=True, temperature=0.0, **kw)
    plain = run_critique_revision(Run.create(tmp_path/"a"), cfg(), model=tiny, progress=False)
    opened = run_critique_revision(Run.create(tmp_path/"b"), cfg(revision_prefix=opening), model=tiny, progress=False)
    before = {r["id"]: r for r in plain.records}
    for r in opened.records:
        rev = r["rounds"][0]["revision"]
        if r["label"] == "benign": assert rev == before[r["id"]]["rounds"][0]["revision"]
        else: assert rev.startswith(opening) and r["final_response"] == rev
    steps = next((tmp_path/"b"/"critique_revision"/"steps").iterdir())
    prompt_tokens = {json.loads(l)["id"]: json.loads(l)["prompt_tokens"] for l in (steps/"r1_revision.jsonl").read_text().splitlines()}
    plain_steps = next((tmp_path/"a"/"critique_revision"/"steps").iterdir())
    plain_tokens = {json.loads(l)["id"]: json.loads(l)["prompt_tokens"] for l in (plain_steps/"r1_revision.jsonl").read_text().splitlines()}
    assert all((prompt_tokens[i] > plain_tokens[i]) == (before[i]["label"] != "benign") for i in prompt_tokens)   # the model saw the words
    assert steps.name != plain_steps.name                  # another setting, other steps: nothing is reused across them


def test_revision_prefix_and_the_continuation_keep_their_space(tmp_path, tiny):
    "'…, but' + the model's stripped continuation 'I can help…' must read '…, but I can help…', not '…, butI can help…'."
    from cai_workbench.stages.critique_revision import join_opening
    assert join_opening("I can't help with that, but", "I can help with") == "I can't help with that, but I can help with"
    assert join_opening("No", ", thanks.") == "No, thanks." and join_opening("Sure: ", "yes") == "Sure: yes" and join_opening("", "x") == "x"
    p, opening = write_prompts(tmp_path/"p.jsonl"), "I can't help with that, but"
    opened = run_critique_revision(Run.create(tmp_path/"b"), small(p, critique_free=True, temperature=0.0, revision_prefix=opening), model=tiny, progress=False)
    steps = next((tmp_path/"b"/"critique_revision"/"steps").iterdir())
    cont = {json.loads(l)["id"]: json.loads(l)["text"] for l in (steps/"r1_revision.jsonl").read_text().splitlines()}
    checked = 0
    for r in opened.records:
        if r["label"] == "benign": continue
        rev, c = r["rounds"][0]["revision"], cont[r["id"]]
        assert rev.startswith(opening) and rev.endswith(c.strip())
        if c.strip()[:1].isalnum(): assert rev == f"{opening} {c.strip()}", rev; checked += 1
    assert checked, "no continuation starting with a word: the check above did not run"
