#!/bin/sh
# Copy what compare_runs reads (manifest.json, evaluation/summary.json when the run has one) of run folders here:
#   sh copy.sh /work/runs/study /work/runs/demo-est ...
cd "$(dirname "$0")"
for r in "$@"; do
  n=$(basename "$r"); mkdir -p "$n"
  cp "$r/manifest.json" "$n/manifest.json"
  if [ -f "$r/evaluation/summary.json" ]; then mkdir -p "$n/evaluation"; cp "$r/evaluation/summary.json" "$n/evaluation/summary.json"; fi
done
