#!/usr/bin/env bash
# On the GPU machine (device tool, `carry: [".whl"]`): install the carried wheels, run the CUDA tests and the GPU
# benchmark; logs and the results JSON go to $OUT (or ./gpu-out). About 6-8 minutes on one H200.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -m pytest -q -m cuda tests/test_cuda.py -rs -p no:cacheprovider 2>&1 | tee "$OUT/cuda-tests.log" | tail -20
timeout 420 python3 bench/gpu.py --out "$OUT/gpu-results.json" 2>&1 | grep -v "Warning\|warnings.warn" | tee "$OUT/gpu-bench.log" | tail -30
