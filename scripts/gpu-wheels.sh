#!/usr/bin/env bash
# Download the wheels the lent GPU machine lacks (it has torch, transformers, peft, accelerate, pyarrow, pandas,
# scipy, xxhash, but no TRL, datasets or fastcore) into .whl/ for Python 3.12 x86-64. Then `bash scripts/gpu-check.sh`
# there, with `.whl` carried. .whl/ is ignored by git (add `/.whl/` to .git/info/exclude).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
ver() { "$py" -c "import importlib.metadata as m; print(m.version('$1'))"; }
rm -rf .whl && mkdir -p .whl
for pkg in trl datasets dill multiprocess fastcore datasketch; do
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl "$pkg==$(ver $pkg)"
done
du -sh .whl
