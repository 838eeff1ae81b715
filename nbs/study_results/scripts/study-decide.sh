#!/bin/bash
SNAP=$1
PYTHONPATH=$SNAP /work/main/.venv/bin/python - $SNAP <<'PY'
import json, sys, yaml
from pathlib import Path
snap = Path(sys.argv[1])
v = json.loads((snap/"nbs/study_results/val_levers.json").read_text())["levers"]
c = yaml.safe_load((snap/"cai_workbench/data/presets/study.yaml").read_text())
p, d = v.get("preset"), v.get("drop")
rate = lambda x: x[0]/x[1] if x[1] else 0.0
ok = d is None or (rate(d["val_sft_harmful"]) >= rate(p["val_sft_harmful"]) and rate(d["val_sft_benign"]) <= rate(p["val_sft_benign"]))
if d is None: print("drop lever not measured on @val (time): chosen on the @fit targets' commentary share alone")
c["critique_revision"]["commentary"] = "drop" if ok else "keep"
# size to the time left before 06:00 UTC (estimate from the @val lever runs: ~5.5 s per critique-revision prompt,
# ~1.6 s per evaluation prompt and stage, ~9 s per SFT step, ~8 min for the other stages)
import datetime as dt
now = dt.datetime.now(dt.timezone.utc); left = (now.replace(hour=6, minute=0, second=0) - now).total_seconds()/60 - 6
n_hh = 60 if left >= 33 else 20 if left >= 29 else 10
cr, ev = c["critique_revision"], c["evaluation"]
cr["prompts"] = f"red-team+benign+hh-rlhf[{n_hh}]?@train"; ev["prompts"] = ["red-team+benign@heldout", f"hh-rlhf[{n_hh}]?@heldout"]
if 21 <= left < 25: cr["limit"] = 64
if left < 21: cr["limit"] = 48
print(f"{left:.0f} min left at {now:%H:%M}: hh-rlhf[{n_hh}], critique-revision limit {cr.get('limit')}")
PY
