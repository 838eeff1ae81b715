"""Writes ../../estimate_results/check-study.json, exactly as run: `python estimate_study.py SMALL_RUN FULL_RUN`.
`estimate()` predicts the study run FULL_RUN (the preset as committed) from the measured rates of one earlier, smaller
study run only (`reference=SMALL_RUN`: the first full-size run, 148 training prompts and 81 held-out ones against 465
and 214); each stage's prediction is set beside the wall time FULL_RUN's manifest recorded. Nothing is typed in."""
import json, sys
from datetime import datetime, timezone
from pathlib import Path

from cai_workbench.launch.estimate import estimate
from cai_workbench.pipeline import load_config

HERE = Path(__file__).resolve().parent.parent.parent
small, full = Path(sys.argv[1]), Path(sys.argv[2])
cfg, _ = load_config(str(full/"config.yaml"))
est = estimate(cfg, reference=[str(small)])
man = json.loads((full/"manifest.json").read_text())
rows = []
for r in est.rows:
    act = man["stages"][r["stage"]]["wall_s"]
    rows.append({"stage": r["stage"], "tokens": r["tokens"], "what": r["what"], "predicted_s": round(r["wall_s"], 1), "actual_s": act,
                 "ratio": round(r["wall_s"]/act, 3), "within_30": abs(r["wall_s"]/act - 1) <= 0.30, "rate": r["rate"]})
out = {"measured": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "reference": str(small), "predicted_run": str(full),
       "machine": man["environment"]["device"]["name"], "rows": rows,
       "whole_run": {"predicted_s": round(sum(r["predicted_s"] for r in rows), 1), "actual_s": round(sum(r["actual_s"] for r in rows), 1)}}
(HERE/"estimate_results"/"check-study.json").write_text(json.dumps(out, indent=1) + "\n")
for r in rows: print(r["stage"], r["predicted_s"], r["actual_s"], r["ratio"], r["within_30"])
