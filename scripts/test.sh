#!/usr/bin/env bash
# The README's test command (after scripts/install.sh): notebooks and library in sync, notebook tests, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export MPLBACKEND=Agg

echo "== 1/3 notebooks, exported library and README in sync (nbdev-export, nbdev-clean, scripts/readme.py)"
$V/nbdev-export
$V/nbdev-clean
$V/python scripts/readme.py >/dev/null
if git rev-parse --git-dir >/dev/null 2>&1; then
  changed=$(git status --porcelain -- nbs cai_workbench README.md)
  if [ -n "$changed" ]; then
    echo "error: nbdev-export/nbdev-clean changed these files; run 'make export' and commit them:" >&2
    echo "$changed" >&2
    git --no-pager diff --stat -- nbs cai_workbench README.md >&2 || true
    exit 1
  fi
fi

echo "== 2/3 notebook tests (nbdev-test; cells flagged slow/cuda are skipped)"
$V/nbdev-test --n-workers 2 --timing

echo "== docs site from the notebooks' saved outputs (scripts/docs.py -> _site/; opened in Chromium by tests/e2e/test_docs_e2e.py)"
$V/python scripts/docs.py
export CAI_DOCS_REQUIRED=1

# -- browser tests (tests/e2e, marker e2e): Debian's chromium for Playwright. Installs it when root and missing;
#    otherwise says why and the e2e tests skip with the reason. Skip the browser tests: scripts/test.sh -m "not e2e"
bash scripts/browser-deps.sh
# Every stage notebook runs in the real kernel in the browser (about 6 min on 2 quiet cores);
# CAI_E2E_NOTEBOOKS=fast keeps to the quick ones.
export CAI_E2E_NOTEBOOKS=${CAI_E2E_NOTEBOOKS:-all}
# --

echo "== 3/3 pytest (unit, slow and browser tests)"
# pytest exits 5 when it collected no tests: that fails this script too.
$V/python -m pytest -q --durations=25 tests "$@"
