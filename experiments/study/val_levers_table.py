"""Writes nbs/study_results/val_levers.json from the small validation lever runs (val_levers.py). As run:

    python experiments/study/val_levers_table.py RUNS      # RUNS: val_levers.py's OUT

Nothing is re-measured: it reads each run's critique_revision/records.jsonl (the SL-CAI targets, on `@fit` prompts)
and evaluation/responses.jsonl (greedy answers of base and SFT on the `@val` prompts)."""
import argparse, json, sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from cai_workbench.core.stats import rate_difference, wilson   # noqa: E402
from cai_workbench.judges.rules import classify_refusal   # noqa: E402
from cai_workbench.stages.critique_revision import COMMENTARY, is_commentary   # noqa: E402

OUT = REPO/"nbs"/"study_results"/"val_levers.json"


def jl(p: Path) -> list[dict]: return [json.loads(l) for l in p.read_text().splitlines() if l.strip()]


def refused(run: Path, stage: str) -> dict:
    "{label: {prompt_id: refused}} of one stage's @val answers (the refusal judge's classifier)."
    out = {"harmful": {}, "benign": {}}
    for r in jl(run/"evaluation"/"responses.jsonl"):
        if r["stage"] == stage and r["label"] in out: out[r["label"]][r["prompt_id"]] = classify_refusal(r["text"]).refused
    return out


def row(run: Path, ref: dict) -> dict:
    recs = jl(run/"critique_revision"/"records.jsonl")
    kept = [r for r in recs if r.get("dropped_by") is None]
    harm = [r for r in kept if r["label"] == "harmful"]
    sft, base = refused(run, "sft"), refused(run, "base")
    f = lambda k, n: wilson(k, n).format()
    out = {"targets_n": len(recs), "targets_kept": len(kept),
           "dropped_commentary": sum(r.get("dropped_by") == "commentary" for r in recs),
           "commentary_share_all": [sum(is_commentary(r["final_response"]) for r in recs), len(recs)],
           "commentary_share_kept": [sum(is_commentary(r["final_response"]) for r in kept), len(kept)],
           "kept_harmful_targets_refusing": [sum(classify_refusal(r["final_response"]).refused for r in harm), len(harm)],
           "val_sft_harmful": [sum(sft["harmful"].values()), len(sft["harmful"])],
           "val_sft_benign": [sum(sft["benign"].values()), len(sft["benign"])],
           "val_base_harmful": [sum(base["harmful"].values()), len(base["harmful"])],
           "val_base_benign": [sum(base["benign"].values()), len(base["benign"])]}
    dh, db = rate_difference(sft["harmful"], base["harmful"]), rate_difference(sft["benign"], base["benign"])
    out["text"] = {"commentary (all targets)": f(*out["commentary_share_all"]),
                   "commentary (SFT targets kept)": f(*out["commentary_share_kept"]) if kept else "no targets kept",
                   "kept harmful targets that refuse": f(*out["kept_harmful_targets_refusing"]) if harm else "none kept",
                   "SFT harmful refusal on @val": f(*out["val_sft_harmful"]) + f"; vs base {dh.format()}",
                   "SFT benign over-refusal on @val": f(*out["val_sft_benign"]) + f"; vs base {db.format()}"}
    if ref is not None:
        out["text"]["SFT harmful refusal vs preset's SFT"] = rate_difference(sft["harmful"], ref["harmful"]).format()
        out["text"]["SFT benign over-refusal vs preset's SFT"] = rate_difference(sft["benign"], ref["benign"]).format()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, help="the folder of val_levers.py's run folders")
    ap.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT.relative_to(REPO)} (its rows of runs not in RUNS are kept)")
    a = ap.parse_args(argv)
    runs = a.runs; done = [d for d in sorted(runs.iterdir()) if (d/"evaluation"/"summary.json").exists()]
    ref = refused(runs/"preset", "sft") if (runs/"preset"/"evaluation"/"responses.jsonl").exists() else None
    old = json.loads(a.out.read_text())["levers"] if a.out.exists() else {}
    rows = {**old, **{d.name: row(d, None if d.name == "preset" else ref) for d in done}}   # rows of runs not in RUNS are kept
    a.out.write_text(json.dumps({"split": "validation: SL-CAI trains on 24 @fit prompts, scored on @val",
                                 "commentary_pattern": COMMENTARY, "levers": rows}, indent=1) + "\n")
    for n, r in rows.items(): print(n, json.dumps(r["text"], indent=1))


if __name__ == "__main__":
    main()
