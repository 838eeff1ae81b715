# The two commands of the README. Both start from a fresh clone.
.PHONY: demo test install export clean-nbs notebooks docs
V ?= .venv/bin

install:
	bash scripts/install.sh

## Install everything, then run Constitutional AI end to end on the embedded model with a known-answer check (CPU, offline).
demo: install
	.venv/bin/cai-workbench run --preset demo

## Install everything, then run every test (notebooks, pytest, browser tests).
test:
	EXTRAS=dev,sagemaker,tracking,docs bash scripts/install.sh
	bash scripts/test.sh

## Notebooks -> library (run after editing nbs/).
export:
	.venv/bin/nbdev-export && .venv/bin/nbdev-clean && .venv/bin/python scripts/readme.py

## Re-execute every notebook in nbs/ in place with its outputs (CPU, offline; embedded model where used).
## Some notebooks: make notebooks NBS="nbs/00_core.ipynb nbs/02a_views.ipynb"; options: NBFLAGS="-j 1 --no-slow"
notebooks:
	$(V)/python scripts/notebooks.py $(NBFLAGS) $(NBS)

## The documentation site from the notebooks' saved outputs -> _site/ (DOCS_ENGINE=quarto: nbdev-docs -> _docs/).
docs:
	$(V)/python scripts/docs.py $(if $(DOCS_ENGINE),--engine $(DOCS_ENGINE),)
