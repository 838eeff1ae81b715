#!/bin/bash
# The study run, from a code snapshot, under the timed lock: flock /work/timed.lock /work/runs/study-timed.sh SNAP
SNAP=$1; CFG=$2; RUN=/work/runs/study-main; mkdir -p $RUN; cd $RUN
S=$(date -u +%T); T0=$(date +%s); L0=$(uptime)
PYTHONPATH=$SNAP OMP_NUM_THREADS=2 /usr/bin/time -v -o /work/runs/study.time.txt nice -n 0 /work/main/.venv/bin/python -c "import sys; from cai_workbench.pipeline import main; sys.argv[0]=\"cai-workbench\"; sys.exit(main())" run $CFG --run-dir $RUN > /work/runs/study.log 2>&1
RC=$?; E=$(date -u +%T); T1=$(date +%s); L1=$(uptime)
CPU=$(awk -F': ' '/User time/{u=$2} /System time/{s=$2} END{print u+s}' /work/runs/study.time.txt)
python3 -c "import json,sys; json.dump({'started_utc':'$S','ended_utc':'$E','wall_s':$T1-$T0,'cpu_s':float('$CPU'),'load_at_start':'''$L0'''.split('load average:')[1].strip(),'load_at_end':'''$L1'''.split('load average:')[1].strip(),'exit_code':$RC,'code':'snapshot $SNAP (commit '+sys.argv[1]+')'}, open('/work/runs/study.timing.json','w'), indent=1)" "$(git -C $SNAP rev-parse --short HEAD)"
