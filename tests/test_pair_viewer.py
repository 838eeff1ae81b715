"Pair viewer: decisions persist atomically and survive a reload; filters and sort; escaping."
import json

import pytest

from cai_workbench.feedback.label_quality import synthetic_records
from cai_workbench.ui.pair_viewer import PairViewer, apply_decision, pair_html, set_label
from cai_workbench.inputs.pair_data import load_pair_file, save_pairs


@pytest.fixture
def stage(tmp_path):
    recs = synthetic_records(6, seed=4)
    recs[0].update(response_a="<script>alert('x')</script> & more", prompt="<img src=x onerror=alert(1)>",
                   reasoning="<b>because</b>")
    recs[0]["chosen"], recs[0]["rejected"] = ((recs[0]["response_a"], recs[0]["response_b"]) if recs[0]["label"] == "a"
                                              else (recs[0]["response_b"], recs[0]["response_a"]))
    recs[1].update(label="tie", p_a=0.5, soft_label=0.5, chosen=recs[1]["response_a"], rejected=recs[1]["response_b"])
    recs[2].update(source="revision", label_source="revision", principle="honesty", p_a=None, p_a_ab=None, p_a_ba=None,
                   soft_label=1.0, label="a", chosen=recs[2]["response_a"], rejected=recs[2]["response_b"])
    save_pairs(tmp_path, recs)
    return tmp_path


def disk(stage): return {r["id"]: r for r in load_pair_file(stage/"pairs.jsonl")}


def test_flip_persists_and_survives_reload(stage):
    v = PairViewer(stage)
    v.source.value = "ai"; v.sort.value = "most confident first"
    target = v.current
    v.flip_button.click()
    r = disk(stage)[target["id"]]
    assert r["label"] == ("b" if target["label"] == "a" else "a") and r["label_source"] == "human"
    assert (r["chosen"], r["rejected"]) == (target["rejected"], target["chosen"])
    assert r["previous"] == {k: target[k] for k in ("label", "label_source", "soft_label", "chosen", "rejected")}
    from datasets import load_from_disk
    row = load_from_disk(str(stage/"dataset")).filter(lambda x: x["id"] == target["id"])[0]
    assert (row["chosen"], row["label_source"]) == (target["rejected"], "human")
    v2 = PairViewer(stage)
    v2.source.value = "human"
    assert [x["id"] for x in v2.filtered] == [target["id"]]
    assert "was " + target["label"] + " by ai" in v2.html.value


def test_tie_buttons_and_accept(stage):
    v = PairViewer(stage)
    assert v.current["label"] == "tie" and v.flip_button.description == "B better"
    v.flip_button.click()
    assert disk(stage)["1"]["label"] == "b" and disk(stage)["1"]["soft_label"] == 1.0
    v.show("3"); old = v.current["label"]
    v.tie_button.click()
    assert disk(stage)["3"]["label"] == "tie"
    from datasets import load_from_disk
    assert "3" not in load_from_disk(str(stage/"dataset"))["id"]       # ties leave the training data
    v.show("3"); v.accept_button.click()                               # on a tie the accept button means "A better"
    assert disk(stage)["3"]["label"] == "a" and disk(stage)["3"]["previous"]["label"] == old


def test_filters(stage):
    v = PairViewer(stage)
    v.principle.value = "honesty"
    assert [r["id"] for r in v.filtered] == ["2"]
    v.source.value = "ai"
    assert v.filtered == [] and v.accept_button.disabled and "no pairs match" in v.html.value
    v.principle.value = "(all)"; v.sort.value = "least confident first"
    conf = [abs(2*r["soft_label"] - 1) for r in v.filtered]
    assert conf == sorted(conf)


def test_failed_dataset_write_keeps_the_decision(stage, monkeypatch):
    "The JSONL is written first and atomically: if writing dataset/ fails, the decision is still on disk."
    import datasets
    def boom(*a, **k): raise OSError("disk full")
    monkeypatch.setattr(datasets.Dataset, "save_to_disk", boom)
    with pytest.raises(OSError):
        set_label(stage, "4", "tie")
    assert disk(stage)["4"]["label"] == "tie"
    assert not [p for p in stage.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_bad_decisions(stage):
    with pytest.raises(ValueError, match="cannot flip"): set_label(stage, "1", "flip")
    with pytest.raises(KeyError, match="no pair with id"): set_label(stage, "404", "a")
    with pytest.raises(ValueError, match="decision="): apply_decision(disk(stage)["0"], "maybe")


def test_model_text_is_escaped(stage):
    h = pair_html(disk(stage)["0"])
    assert "<script>" not in h and "<img" not in h and "<b>because" not in h
    assert "&lt;script&gt;" in h and "&lt;img src=x" in h and "&lt;b&gt;because" in h
    v = PairViewer(stage); v.show("0")
    assert "<script>alert" not in v.html.value
