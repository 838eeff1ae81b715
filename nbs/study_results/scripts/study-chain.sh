#!/bin/bash
# Under the timed lock: the `drop` validation lever when there is time for it (>= 40 min before 06:00 UTC), the
# choice (rule fixed before: drop unless its @val SFT harmful refusal is lower or its benign over-refusal higher than
# the preset's; without the lever run: drop, on the @fit targets' commentary share), then the study run, sized to the time left.
SNAP=$1
cd /work/runs/study-val
LEFT=$(( ( $(date -d "06:00" +%s) - $(date +%s) ) / 60 ))
if [ $LEFT -ge 40 ]; then
  echo "drop lever start $(date -u +%T) $(uptime)" >> /work/runs/study-val/log-drop.txt
  PYTHONPATH=$SNAP OMP_NUM_THREADS=2 /usr/bin/time -v nice -n 0 /work/main/.venv/bin/python $SNAP/nbs/study_results/scripts/val_levers.py /work/runs/study-val drop >> /work/runs/study-val/log-drop.txt 2>&1
  echo "drop lever end $(date -u +%T) $(uptime)" >> /work/runs/study-val/log-drop.txt
else
  echo "drop lever not run: $LEFT min left before 06:00 at $(date -u +%T)" > /work/runs/study-val/log-drop.txt
fi
PYTHONPATH=$SNAP /work/main/.venv/bin/python $SNAP/nbs/study_results/scripts/val_table.py /work/runs/study-val > /work/runs/study-val/table.txt 2>&1
/work/runs/study-decide.sh $SNAP >> /work/runs/study-choice.txt 2>&1
/work/runs/study-timed.sh $SNAP /work/runs/study-config.yaml
