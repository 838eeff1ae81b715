"""Agreement of each AI labelling method with the hh-rlhf human labels, from labeller_scores.py's files: step 2 of
nbs/study_results/labellers.json (labellers_table.py imports `load` and `score` from here).

    python experiments/study/labeller_agreement.py choose --work WORK    # shuffled pairs 0-59: WORK/t16.json, WORK/choose2.json
    python experiments/study/labeller_agreement.py report --work WORK    # pairs 60-159: WORK/report_{plain,letter,generic}.json

Prints each method's agreement (Wilson interval; ties counted 1/2) and writes WORK/agree_<split>.json. A method
decides for response_a when its score is > 0; |score| <= 1e-9 is a tie."""
import argparse, json, random, sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from cai_workbench.feedback.label_quality import shuffle_human_pairs, wilson_interval   # noqa: E402
from cai_workbench.inputs.prompts import load_hh_rlhf_pairs, shared_path   # noqa: E402

HH = "hh-rlhf/harmless-base/test.jsonl.gz"
SPLITS = {"choose": (["t16.json", "choose2.json"], 0, 60),
          "report": (["report_plain.json", "report_letter.json", "report_generic.json"], 60, 160)}
ENS = ["no-violence", "no-weapons-of-mass-harm", "no-crime-help"]
_pairs = None


def pairs(data=None) -> list[dict]:
    "hh-rlhf harmless-base test, single-turn pairs, shuffled with random.Random(0) (read once)."
    global _pairs
    if _pairs is None:
        src = data or shared_path(HH)
        if src is None: sys.exit(f"no hh-rlhf data: ../shared/data/{HH} is absent (or pass --data)")
        _pairs = list(load_hh_rlhf_pairs(src, single_turn=True)); random.Random(0).shuffle(_pairs)
    return _pairs


def load(files, lo, hi, data=None):
    "[(pair, its scores merged over `files`)] for the shuffled pairs [lo, hi) that were measured; absent files skipped."
    rows = {}
    for f in [Path(f) for f in files if Path(f).exists()]:
        for k, v in json.loads(f.read_text())["rows"].items(): rows.setdefault(k, {}).update(v)
    sh = shuffle_human_pairs(pairs(data)[lo:hi], seed=0)
    return [(p, rows[p["id"]]) for p in sh if p["id"] in rows]


def split_files(work: Path, split: str) -> list[Path]:
    return [work/f for f in SPLITS[split][0]]


def d(r, c): return r[c + ":a"] - r[c + ":b"]


METHODS = {   # name -> (registry config, score > 0 means response_a)
 "letter (current default)": ({"labeller": "letter"}, lambda p, r: r["letter0:p_a"] - 0.5 if "letter0:p_a" in r else None),
 "likelihood": ({"labeller": "likelihood"}, lambda p, r: d(r, "plain")),
 "likelihood-ratio, generic": ({"labeller": "likelihood-ratio", "labeller_options": {"principles": 0}},
                               lambda p, r: d(r, "generic") - d(r, "plain") if "generic:a" in r else None),
 **{f"likelihood-ratio, {n}": ({"labeller": "likelihood-ratio", "labeller_options": {"principles": [n]}},
                               (lambda n: lambda p, r: d(r, n) - d(r, "plain") if n + ":a" in r else None)(n)) for n in ENS},
 "likelihood-ratio, ensemble of 3": ({"labeller": "likelihood-ratio", "labeller_options": {"principles": ENS}},
                                     lambda p, r: sum(d(r, n) for n in ENS)/3 - d(r, "plain") if all(n + ":a" in r for n in ENS) else None),
 "shorter (baseline)": ({"labeller": "shorter"}, lambda p, r: len(p["response_b"].split()) - len(p["response_a"].split())),
}


def score(rows):
    "{method: agreement with the human labels, its interval, ties, and each pair's outcome}."
    out = {}
    for name, (cfg, f) in METHODS.items():
        vals = [(f(p, r), p["human_label"], p["id"]) for p, r in rows]
        vals = [(s, h, i) for s, h, i in vals if s is not None]
        if not vals: continue
        dec = [(s, h) for s, h, _ in vals if abs(s) > 1e-9]
        k = sum((s > 0) == (h == "a") for s, h in dec)
        lo, hi = wilson_interval(k, len(dec))
        out[name] = {"config": cfg, "n": len(vals), "decided": len(dec), "agree": k, "ties": len(vals) - len(dec),
                     "agreement": round(k/len(dec), 4) if dec else None, "ci": [round(lo, 4), round(hi, 4)],
                     "agreement_ties_half": round((k + 0.5*(len(vals) - len(dec)))/len(vals), 4),
                     "outcomes": {i: None if abs(s) <= 1e-9 else int((s > 0) == (h == "a")) for s, h, i in vals}}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("split", choices=sorted(SPLITS))
    ap.add_argument("--work", type=Path, required=True, help="the folder labeller_scores.py wrote its files to")
    ap.add_argument("--data", type=Path, default=None, help=f"the hh-rlhf file (default: ../shared/data/{HH})")
    a = ap.parse_args(argv)
    _, lo, hi = SPLITS[a.split]
    res = score(load(split_files(a.work, a.split), lo, hi, a.data))
    for k, v in sorted(res.items(), key=lambda x: -x[1]["agreement_ties_half"]):
        print(f"{k:42s} {v['agree']}/{v['decided']} = {v['agreement']} {v['ci']} ties={v['ties']} ties-half={v['agreement_ties_half']}")
    (a.work/f"agree_{a.split}.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
