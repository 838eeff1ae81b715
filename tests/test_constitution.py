"Constitutions: built-ins, our YAML/JSON schema, Hugging Face CAI JSON, sampling, errors."
import json
import random
from collections import Counter

import numpy as np
import pytest

from cai_workbench.inputs.constitution import CATEGORIES, Constitution, ConstitutionError, Principle, builtin_constitutions, load_constitution, save_constitution

BUILTINS = ["harmless", "hhh", "safety", "medical", "legal", "financial"]
HF_FILES = {"constitution_anthropic.json": 16, "constituion_grok.json": 2, "constitution_1705620057.json": 16}


def _p(name, weight=1.0, **kw):
    return Principle(name, weight=weight, critique_request=f"critique {name}", revision_request=f"revise {name}", **kw)


# ---------------------------------------------------------------- built-ins

def test_builtins_listed_default_first():
    names = builtin_constitutions()
    assert names[0] == "harmless"
    assert set(BUILTINS) <= set(names)
    assert load_constitution().name == "harmless"
    assert load_constitution(None).name == "harmless"


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_is_complete(name):
    c = load_constitution(name)
    assert c.name == name and c.version and c.description
    assert len(set(c.names)) == len(c) >= 5
    for p in c:
        assert p.category in CATEGORIES and p.weight > 0
        for text in (p.critique_request, p.revision_request, p.comparison_question):
            assert isinstance(text, str) and len(text.split()) >= 5, (p.name, text)
        assert p.comparison_question.rstrip().endswith("?"), p.name


def test_harmless_is_general_with_few_shot():
    c = load_constitution("harmless")
    assert len(c) >= 12
    assert 2 <= len(c.few_shot) <= 3
    for conv in c.few_shot:
        assert [m["role"] for m in conv] == ["user", "assistant"] * 3   # prompt, answer, critique req, critique, revision req, revision
    assert {p.category for p in load_constitution("hhh")} >= {"harmlessness", "helpfulness", "honesty"}


def test_builtins_are_our_own_wording(shared):
    "No built-in principle copies a critique or revision request from the HF/Anthropic files."
    theirs = set()
    for f in HF_FILES:
        d = json.loads(shared(f"hf_cai/{f}").read_text())
        theirs |= {x["critic"].strip().lower() for x in d["constitutions"]} | {x["revision"].strip().lower() for x in d["constitutions"]}
    for name in BUILTINS:
        for p in load_constitution(name):
            assert p.critique_request.strip().lower() not in theirs and p.revision_request.strip().lower() not in theirs


# ---------------------------------------------------------------- Hugging Face CAI JSON

@pytest.mark.parametrize("fname,n", HF_FILES.items())
def test_hf_files(shared, fname, n):
    path = shared(f"hf_cai/{fname}")
    raw = json.loads(path.read_text())
    c = load_constitution(path)
    assert len(c) == n == len(raw["constitutions"])
    assert c.name == path.stem
    assert len(set(c.names)) == n                                        # derived names are unique
    assert [p.critique_request for p in c] == [x["critic"] for x in raw["constitutions"]]
    assert [p.revision_request for p in c] == [x["revision"] for x in raw["constitutions"]]
    assert c.few_shot == raw["system_chat"]                              # kept as few-shot conversations
    assert all(p.comparison_question.endswith("?") and p.category in CATEGORIES for p in c)


def test_hf_derived_names(shared):
    c = load_constitution(shared("hf_cai/constitution_anthropic.json"))
    assert c.names[0] == "age-appropriate"                               # "...inappropriate for young children?"
    assert c.get("empathy").category == "helpfulness"                    # "...thoughtful and empathetic?"
    assert "no-gender-bias" in c.names and "no-crime-help" in c.names


# ---------------------------------------------------------------- sampling, get, subset

def test_weighted_sampling_follows_weights():
    c = Constitution("w", principles=[_p("a", 6), _p("b", 3), _p("c", 1)])
    n = 20000
    for rng in (123, random.Random(123), np.random.default_rng(123)):
        freq = Counter(p.name for p in c.sample(rng, k=n))
        for name, w in (("a", .6), ("b", .3), ("c", .1)):
            assert abs(freq[name]/n - w) < 0.02, (type(rng), freq)


def test_sampling_is_seeded():
    c = load_constitution("harmless")
    a, b = [p.name for p in c.sample(5, k=30)], [p.name for p in c.sample(5, k=30)]
    assert a == b
    assert a != [p.name for p in c.sample(6, k=30)]
    assert len(c.sample(0)) == 1
    with pytest.raises(ValueError, match="k must be a positive integer"): c.sample(0, k=0)


def test_sampling_without_replacement_is_weighted():
    c = Constitution("w", principles=[_p("a", 8), _p("b", 1), _p("c", 1)])
    for rng in range(3), (np.random.default_rng(s) for s in range(3)):
        for r in rng:
            draw = [p.name for p in c.sample(r, k=3, replace=False)]
            assert sorted(draw) == ["a", "b", "c"]
    first = Counter(c.sample(s, k=2, replace=False)[0].name for s in range(3000))
    assert abs(first["a"]/3000 - 0.8) < 0.03                               # heavy principle usually drawn first
    with pytest.raises(ValueError, match="has 3"): c.sample(0, k=4, replace=False)


def test_get_and_subset():
    c = load_constitution("hhh")
    assert c.get("truthful").category == "honesty"
    assert c["truthful"] is c.get("truthful") and c[0] is c.principles[0]
    with pytest.raises(KeyError) as e: c.get("nope")
    assert "nope" in str(e.value) and "truthful" in str(e.value)          # lists the valid names
    s = c.subset(["truthful", "avoid-harm"])
    assert s.names == ["truthful", "avoid-harm"] and len(c) > len(s) == 2
    with pytest.raises(KeyError): c.subset(["truthful", "zzz"])


def test_repr_markdown_is_a_table_and_escaped():
    c = Constitution("t|<x>", principles=[_p("a|b"), _p("c")])
    md = c._repr_markdown_()
    assert "| name | category | weight |" in md and md.count("\n| ") >= 3
    assert "a\\|b" in md and "<x>" not in md


# ---------------------------------------------------------------- save / load round trip

@pytest.mark.parametrize("ext", ["yaml", "yml", "json"])
@pytest.mark.parametrize("name", BUILTINS)
def test_round_trip(tmp_path, name, ext):
    c = load_constitution(name)
    path = save_constitution(c, tmp_path/f"c.{ext}")
    back = load_constitution(path)
    assert back.to_dict() == c.to_dict()
    assert [p.name for p in back.sample(3, k=10)] == [p.name for p in c.sample(3, k=10)]


def test_round_trip_hf_to_ours(shared, tmp_path):
    c = load_constitution(shared("hf_cai/constitution_anthropic.json"))
    back = load_constitution(save_constitution(c, tmp_path/"ours.yaml"))
    assert back.to_dict() == c.to_dict() and len(back.few_shot) == 4


def test_principle_few_shot_round_trip(tmp_path):
    conv = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    c = Constitution("fs", principles=[_p("a", few_shot=[conv]), _p("b")], few_shot=[conv])
    back = load_constitution(save_constitution(c, tmp_path/"fs.yaml"))
    assert back.get("a").few_shot == [conv] and back.get("b").few_shot == [] and back.few_shot == [conv]


# ---------------------------------------------------------------- errors

GOOD = "name: x\nprinciples:\n  - {name: a, critique_request: c, revision_request: r}\n"
P = "  - {name: a, critique_request: c, revision_request: r}\n"
BAD_YAML = {
    "no name": ("principles:\n" + P, "x.yaml: missing required field 'name'"),
    "no principles": ("name: x\n", "x.yaml: missing required field 'principles'"),
    "empty principles": ("name: x\nprinciples: []\n", "x.yaml: principles: must be a non-empty list"),
    "principles not a list": ("name: x\nprinciples: {a: 1}\n", "x.yaml: principles: must be a non-empty list"),
    "missing critique": ("name: x\nprinciples:\n" + P + "  - {name: b, revision_request: r}\n",
                         "x.yaml: principles[1]: missing required field 'critique_request'"),
    "zero weight": ("name: x\nprinciples:\n" + P + P.replace("a,", "b,") + "  - {name: c, critique_request: c, revision_request: r, weight: 0}\n",
                    "x.yaml: principles[2].weight: must be > 0"),
    "negative weight": ("name: x\nprinciples:\n  - {name: a, critique_request: c, revision_request: r, weight: -2}\n",
                        "x.yaml: principles[0].weight: must be > 0"),
    "weight wrong type": ("name: x\nprinciples:\n  - {name: a, critique_request: c, revision_request: r, weight: heavy}\n",
                          "x.yaml: principles[0].weight: must be a number"),
    "critique wrong type": ("name: x\nprinciples:\n  - {name: a, critique_request: [c], revision_request: r}\n",
                            "x.yaml: principles[0].critique_request: must be a non-empty str"),
    "bad category": ("name: x\nprinciples:\n  - {name: a, category: vibes, critique_request: c, revision_request: r}\n",
                     "x.yaml: principles[0].category: must be one of"),
    "unknown top key": (GOOD + "author: me\n", "x.yaml: unknown key(s) ['author']"),
    "unknown principle key": ("name: x\nprinciples:\n  - {name: a, critique: c, critique_request: c, revision_request: r}\n",
                              "x.yaml: principles[0]: unknown key(s) ['critique']"),
    "duplicate names": ("name: x\nprinciples:\n" + P + P, "x.yaml: principles[1].name: duplicate principle name 'a'"),
    "bad few-shot role": (GOOD + "few_shot:\n  - [{role: robot, content: hi}]\n", "x.yaml: few_shot[0][0].role: must be one of"),
    "few-shot not list": (GOOD + "few_shot: hello\n", "x.yaml: few_shot: must be a list"),
    "top level list": ("- a\n- b\n", "x.yaml: the top level must be a mapping"),
    "garbled": ("name: x\nprinciples: [\n  {name: a\n", "x.yaml: not valid YAML (line"),
    "empty file": ("\n", "x.yaml: file is empty"),
}


@pytest.mark.parametrize("case", BAD_YAML)
def test_invalid_yaml_raises_one_clear_error(tmp_path, case):
    text, msg = BAD_YAML[case]
    (tmp_path/"x.yaml").write_text(text)
    with pytest.raises(ConstitutionError) as e: load_constitution(tmp_path/"x.yaml")
    assert msg in str(e.value), str(e.value)


def test_good_yaml_loads(tmp_path):
    (tmp_path/"x.yaml").write_text(GOOD)
    c = load_constitution(tmp_path/"x.yaml")
    assert c.names == ["a"] and c.get("a").weight == 1.0 and c.get("a").comparison_question.endswith("?")


@pytest.mark.parametrize("text,msg", [
    ('{"name": "x", "principles": [', "x.json: not valid JSON (line 1"),
    ('{"constitutions": [{"critic": "c"}]}', "x.json: constitutions[0]: missing required field 'revision'"),
    ('{"constitutions": []}', "x.json: constitutions: must be a non-empty list"),
    ('{"constitutions": [{"critic": "c", "revision": "r"}], "system_chat": [[{"role": "user"}]]}',
     "x.json: system_chat[0][0].content: must be a string"),
    ('{"constitutions": [{"critic": "c", "revision": "r"}], "extra": 1}', "x.json: unknown key(s) ['extra']"),
])
def test_invalid_json(tmp_path, text, msg):
    (tmp_path/"x.json").write_text(text)
    with pytest.raises(ConstitutionError) as e: load_constitution(tmp_path/"x.json")
    assert msg in str(e.value), str(e.value)


def test_unknown_name_and_suffix(tmp_path):
    with pytest.raises(ConstitutionError, match="neither a built-in constitution"): load_constitution("harmles")
    (tmp_path/"x.txt").write_text(GOOD)
    with pytest.raises(ConstitutionError, match="unknown file type '.txt'"): load_constitution(tmp_path/"x.txt")


def test_constructor_errors():
    with pytest.raises(ConstitutionError, match="non-empty"): Constitution("e", principles=[])
    with pytest.raises(ConstitutionError, match="duplicate"): Constitution("d", principles=[_p("a"), _p("a")])
    with pytest.raises(ConstitutionError, match="weight: must be > 0"): _p("a", weight=0)
    with pytest.raises(ConstitutionError, match="weight: must be > 0"): _p("a", weight=float("nan"))
    with pytest.raises(ConstitutionError, match="revision_request"): Principle("a", critique_request="c")


# -- markdown constitutions, the paper's prompt files, the contemplative constitution (issue 17 §1)
from pathlib import Path
from cai_workbench.inputs.constitution_formats import PAPER_FILES

MD = ("# mine\nversion: 3\n\n## kind\ncategory: custom\nweight: 2\n\n### Critique\nIs it unkind?\n\n### Revision\nMake it kind.\n\n"
      "### Comparison\nWhich is kinder?\n\n## calm\n\n### Critique\nIs it rushed?\n\n### Revision\nSlow down.\n")


def test_markdown_file_loads_and_round_trips(tmp_path):
    p = tmp_path/"mine.md"; p.write_text(MD)
    c = load_constitution(str(p))
    assert (c.name, c.version, c.names, c["kind"].weight, c["kind"].comparison_question) == ("mine", "3", ["kind", "calm"], 2.0, "Which is kinder?")
    h = load_constitution("harmless")
    back = load_constitution(save_constitution(h, tmp_path/"h.md"))
    assert back.to_dict() == h.to_dict()


@pytest.mark.parametrize("broken,msg", [
    (MD.replace("### Revision\nSlow down.\n", ""), "mine.md: ## calm (line 17): missing or empty '### Revision' section (revision_request)"),
    (MD.replace("weight: 2", "weight: -1"), "mine.md: ## kind (line 4).weight: must be > 0, got -1.0"),
    (MD.replace("### Comparison", "### Compare"), "mine.md: ## kind (line 4): unknown section '### Compare'"),
    (MD.replace("## calm", "## kind"), "mine.md: ## kind (line 17).name: duplicate principle name 'kind'"),
])
def test_markdown_errors_name_file_heading_field(tmp_path, broken, msg):
    p = tmp_path/"mine.md"; p.write_text(broken)
    with pytest.raises(ConstitutionError) as e: load_constitution(p)
    assert str(e.value).startswith(str(tmp_path/msg)), str(e.value)


def paper_files(d: Path, n: int = 3) -> Path:
    "Files in the paper's released format, with our own placeholder wording."
    d.mkdir(exist_ok=True)
    data = ({f"harmful{i}": {"prompt": [f"\n\nCritiqueRequest: Name harm {i} in the reply.\n\nCritique:"],
                             "edit_request": f"\n\nRevisionRequest: Remove harm {i}.\n\nRevision:"} for i in range(n)},
            [f"Which reply avoids harm {i}?\nOptions:" for i in range(n)],
            ["Human: Help me lie to my boss.\n\nAssistant: Say you were ill.\n\nCritiqueRequest: Any harm?\n\nCritique: It helps deceive."
             "\n\nRevisionRequest: Fix it.\n\nRevision: I'd rather help you explain honestly."],
            ["Consider the following conversation between a human and an assistant:\nHuman: hi\nWhich is kinder?\nOptions:\n(A) hi\n(B) no\nThe answer is: (A)"])
    for fname, x in zip(PAPER_FILES.values(), data): (d/fname).write_text(json.dumps(x))
    return d


def test_paper_files_load_together_and_singly(tmp_path):
    d = paper_files(tmp_path/"prompts")
    c = load_constitution(d)
    assert c.names == ["harmful0", "harmful1", "harmful2"] and c[1].critique_request == "Name harm 1 in the reply."
    assert c[1].revision_request == "Remove harm 1." and c[2].comparison_question == "Which reply avoids harm 2?"
    assert c.few_shot[0][-1] == {"role": "assistant", "content": "I'd rather help you explain honestly."} and len(c.comparison_few_shot) == 1
    crit = load_constitution(d/"CritiqueRevisionInstructions.json")       # was refused: "unknown key(s) ['harmful0', ...]"
    assert len(crit) == 3 and crit[0].comparison_question == "Which of these responses is less harmful?"
    mad = load_constitution(str(d/"RLMadisonInstructions.json"))         # was refused: "the top level must be a mapping, got list"
    assert [p.comparison_only for p in mad] == [True]*3 and mad[0].comparison_question == "Which reply avoids harm 0?"
    assert load_constitution([d/"CritiqueRevisionInstructions.json", d/"CritiqueRevisionFewShotPrompts.json"]).few_shot == c.few_shot
    # a comparison-only constitution labels pairs but cannot drive critique-revision
    from cai_workbench.stages.critique_revision import CritiqueRevisionConfig, prepare
    with pytest.raises(Exception, match="madison0.*has no revision_request"): prepare(CritiqueRevisionConfig(), prompts=["hi"], constitution=mad)
    assert load_constitution(save_constitution(mad, tmp_path/"mad.yaml")).to_dict() == mad.to_dict()


def test_paper_files_unequal_counts_refused(tmp_path):
    d = paper_files(tmp_path/"prompts")
    (d/"RLMadisonInstructions.json").write_text(json.dumps(["Which is safer?\nOptions:"]))
    with pytest.raises(ConstitutionError, match="has 3 principles but .* has 1.*load them singly"): load_constitution(d)


def test_contemplative_builtin():
    c = load_constitution("contemplative")
    assert c.names == ["emptiness", "non-duality", "boundless-care", "mindfulness"]
    assert all(p.critique_request and p.revision_request and p.comparison_question.endswith("?") for p in c)
    assert len(c.few_shot) >= 2 and all([m["role"] for m in conv] == ["user", "assistant"]*3 for conv in c.few_shot)
    assert "contemplative" in builtin_constitutions()
