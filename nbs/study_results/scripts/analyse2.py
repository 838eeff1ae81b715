"Agreement of each labelling method with hh-rlhf human labels: choose on split 'choose', report on split 'report'."
import json, math, random, sys
sys.path.insert(0, "/work/wt-study")
from cai_workbench.inputs.prompts import load_hh_rlhf_pairs
from cai_workbench.feedback.label_quality import shuffle_human_pairs, wilson_interval
pairs = list(load_hh_rlhf_pairs("/work/shared/data/hh-rlhf/harmless-base/test.jsonl.gz", single_turn=True))
random.Random(0).shuffle(pairs)
def load(files, lo, hi):
    rows = {}
    import os
    for f in [f for f in files if os.path.exists(f)]:
        for k, v in json.load(open(f))["rows"].items(): rows.setdefault(k, {}).update(v)
    sh = shuffle_human_pairs(pairs[lo:hi], seed=0)
    return [(p, rows[p["id"]]) for p in sh if p["id"] in rows]
ENS = ["no-violence", "no-weapons-of-mass-harm", "no-crime-help"]
def d(r, c): return r[c + ":a"] - r[c + ":b"]
METHODS = {   # name -> (registry config, score > 0 means response_a)
 "letter (current default)": ({"labeller": "letter"}, lambda p, r: r["letter0:p_a"] - 0.5 if "letter0:p_a" in r else None),
 "likelihood": ({"labeller": "likelihood"}, lambda p, r: d(r, "plain")),
 "likelihood-ratio, generic": ({"labeller": "likelihood-ratio", "labeller_options": {"principles": 0}}, lambda p, r: d(r, "generic") - d(r, "plain") if "generic:a" in r else None),
 **{f"likelihood-ratio, {n}": ({"labeller": "likelihood-ratio", "labeller_options": {"principles": [n]}}, (lambda n: lambda p, r: d(r, n) - d(r, "plain") if n + ":a" in r else None)(n)) for n in ENS},
 "likelihood-ratio, ensemble of 3": ({"labeller": "likelihood-ratio", "labeller_options": {"principles": ENS}}, lambda p, r: sum(d(r, n) for n in ENS)/3 - d(r, "plain") if all(n + ":a" in r for n in ENS) else None),
 "shorter (baseline)": ({"labeller": "shorter"}, lambda p, r: len(p["response_b"].split()) - len(p["response_a"].split())),
}
def score(rows):
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
if __name__ == "__main__":
    which = sys.argv[1]
    if which == "choose": res = score(load(["/tmp/study/t16.json", "/tmp/study/choose2.json"], 0, 60))
    else: res = score(load(["/tmp/study/report_plain.json", "/tmp/study/report_letter.json", "/tmp/study/report_generic.json"], 60, 160))
    for k, v in sorted(res.items(), key=lambda x: -x[1]["agreement_ties_half"]):
        print(f"{k:42s} {v['agree']}/{v['decided']} = {v['agreement']} {v['ci']} ties={v['ties']} ties-half={v['agreement_ties_half']}")
    json.dump(res, open(f"/tmp/study/agree_{which}.json", "w"), indent=1)
