#!/bin/sh
# Copy what compare_runs reads (manifest.json, evaluation/summary.json) of finished runs here: sh copy.sh /work/runs/demo-est ...
cd "$(dirname "$0")"
for r in "$@"; do
  n=$(basename "$r"); mkdir -p "$n/evaluation"
  cp "$r/manifest.json" "$n/manifest.json" && cp "$r/evaluation/summary.json" "$n/evaluation/summary.json"
done
