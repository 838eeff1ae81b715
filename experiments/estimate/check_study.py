"""Writes nbs/estimate_results/check-study.json (13a_estimate's check on the study preset). As run:

    python experiments/estimate/check_study.py SMALL_RUN FULL_RUN      # ../runs/s22/study-main ../runs/s22/final/study-main

`estimate()` predicts the study run FULL_RUN (the preset as committed) from the measured rates of one earlier, smaller
study run only (`reference=SMALL_RUN`: the first full-size run, 148 training prompts and 81 held-out ones against 465
and 214); each stage's prediction is set beside the wall time FULL_RUN's manifest recorded. Nothing is typed in.
Run folders are recorded relative to the repository."""
import argparse, json, os, sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from cai_workbench.launch.estimate import estimate   # noqa: E402
from cai_workbench.pipeline import load_config   # noqa: E402

OUT = REPO/"nbs"/"estimate_results"/"check-study.json"


def rel(path: Path) -> str:
    "A run folder as recorded in results: relative to the repository."
    return os.path.relpath(path.resolve(), REPO)


def check(small: Path, full: Path) -> dict:
    cfg, _ = load_config(str(full/"config.yaml"))
    est = estimate(cfg, reference=[str(small)])
    man = json.loads((full/"manifest.json").read_text())
    rows = []
    for r in est.rows:
        act = man["stages"][r["stage"]]["wall_s"]
        rows.append({"stage": r["stage"], "tokens": r["tokens"], "what": r["what"], "predicted_s": round(r["wall_s"], 1), "actual_s": act,
                     "ratio": round(r["wall_s"]/act, 3), "within_30": abs(r["wall_s"]/act - 1) <= 0.30,
                     "rate": r["rate"].replace(str(small), rel(small))})   # the rate names the reference run
    return {"measured": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "reference": rel(small), "predicted_run": rel(full),
            "machine": man["environment"]["device"]["name"], "rows": rows,
            "whole_run": {"predicted_s": round(sum(r["predicted_s"] for r in rows), 1), "actual_s": round(sum(r["actual_s"] for r in rows), 1)}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("small", type=Path, help="the reference run folder (its measured rates)")
    ap.add_argument("full", type=Path, help="the run folder predicted (its config.yaml, and manifest.json for the actual wall times)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT.relative_to(REPO)}")
    a = ap.parse_args(argv)
    out = check(a.small, a.full)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    for r in out["rows"]: print(r["stage"], r["predicted_s"], r["actual_s"], r["ratio"], r["within_30"])


if __name__ == "__main__":
    main()
