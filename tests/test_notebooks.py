"""The notebooks in nbs/ are committed with their outputs (`make notebooks`), and those outputs hold no volatile noise.

Fast: reads the committed .ipynb files and tests scripts/notebooks.py's scrubbing; nothing is executed here
(nbdev-test and the browser tests run the notebooks)."""
import importlib.util, json, re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NBS = REPO/"nbs"

spec = importlib.util.spec_from_file_location("run_notebooks", REPO/"scripts"/"notebooks.py")
run_notebooks = importlib.util.module_from_spec(spec); spec.loader.exec_module(run_notebooks)

# Notebooks whose code cells show nothing by design; each says why. Everything else must keep outputs.
NO_OUTPUT_BY_DESIGN: dict[str, str] = {}   # notebook stem -> why it shows nothing (none today)


def _code_cells(nb): return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _runs(c) -> bool:
    "Would `make notebooks` execute this cell? (directive-only cells such as `#| default_exp` show nothing anyway)"
    f = run_notebooks.cell_flags(c)
    src = [l for l in "".join(c["source"]).splitlines() if l.strip() and not l.lstrip().startswith("#|")]
    return bool(src) and not (f & run_notebooks.SKIP)


def _texts(nb):
    for c in _code_cells(nb):
        for o in c.get("outputs", []):
            if o["output_type"] == "stream": yield "".join(o["text"])
            for k in ("text/plain", "text/html", "text/markdown"):
                v = o.get("data", {}).get(k)
                if v is not None: yield "".join(v)


NOTEBOOKS = sorted(NBS.glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_keeps_its_outputs(path):
    nb = json.loads(path.read_text())
    if path.stem in NO_OUTPUT_BY_DESIGN or not any(_runs(c) for c in _code_cells(nb)):
        return  # exempt, or all prose (index.ipynb: the README)
    shown = [c for c in _code_cells(nb) if c.get("outputs")]
    assert shown, (f"{path.name} has no saved outputs: run `make notebooks NBS={path.relative_to(REPO)}` and commit it "
                   f"(or, if it shows nothing by design, add it to NO_OUTPUT_BY_DESIGN in {Path(__file__).name} with the reason)")
    never = [c["id"] for c in shown if not _runs(c)]
    assert not never, f"{path.name}: cells {never} are never executed (eval: false / cuda / notest) but carry outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_valid_nbformat(path):
    "The docs build (nbconvert) refuses an invalid notebook, e.g. a cell whose id is null after a hand edit."
    import nbformat
    nbformat.validate(nbformat.read(path, as_version=4))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_outputs_are_clean(path):
    nb = json.loads(path.read_text())
    errors = [c["id"] for c in _code_cells(nb) for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, f"{path.name}: cells {errors} saved an error output"
    for t in _texts(nb):
        assert str(REPO) not in t, f"{path.name}: an output holds this checkout's absolute path {REPO}"
        assert "\x1b[" not in t, f"{path.name}: an output holds ANSI escape codes"
        assert not re.search(r"\bat 0x[0-9a-f]{6,}", t), f"{path.name}: an output holds a memory address: {t[:200]!r}"
    widgets = [c["id"] for c in _code_cells(nb) for o in c.get("outputs", []) if run_notebooks.WIDGET in o.get("data", {})]
    assert not widgets, f"{path.name}: cells {widgets} saved a widget view (its model id changes every run): run `make notebooks`"


def test_scrub_replaces_what_changes_between_runs(tmp_path):
    s = (f"saved {REPO}/runs/demo/x.json and {REPO}\n<object at 0x7f3a2b1c9d40> "
         f"created 2026-12-01T21:40:36+00:00\n{{'train_runtime': 12.345, 'train_samples_per_second': 5.2, 'loss': 0.25}}\n"
         "took 3.2 s, 41.5 tok/s\n\x1b[31mred\x1b[0m\n 10%|#   | 1/10\r 50%|#####  | 5/10\r100%|#########| 10/10\n")
    out = run_notebooks.scrub(s)
    assert str(REPO) not in out and "saved runs/demo/x.json and ." in out
    assert "0x7f3a2b1c9d40" not in out and "0x…" in out
    assert "2026-12-01T21:40:36" not in out and "<timestamp>" in out
    assert "'train_runtime': …" in out and "'train_samples_per_second': …" in out and "'loss': 0.25" in out
    assert "took … s, … tok/s" in out
    assert "\x1b" not in out and "red" in out
    assert "100%|#########| 10/10" in out and "50%" not in out  # only the progress bar's last redraw
    assert run_notebooks.scrub(out) == out  # idempotent: a rerun does not change scrubbed text


def test_scrub_replaces_the_site_packages_folder():
    "A warning's file name shows where the venv is (it may lie outside the checkout): it becomes <site-packages>."
    sp = run_notebooks._SITE[0]
    out = run_notebooks.scrub(f"{sp}/transformers/modeling_utils.py:3303: FutureWarning: x")
    assert out == "<site-packages>/transformers/modeling_utils.py:3303: FutureWarning: x"


def test_scrub_replaces_the_reference_data_folder_beside_the_checkout():
    "The shared data lies beside the checkout, not inside it: its absolute path becomes ../shared."
    out = run_notebooks.scrub(f"UserWarning: {REPO.parent}/shared/data/hh-rlhf/x.jsonl.gz: skipped 9 rows")
    assert out == "UserWarning: ../shared/data/hh-rlhf/x.jsonl.gz: skipped 9 rows" and str(REPO.parent) not in out


def test_scrub_outputs_drops_empty_streams_and_scrubs_html():
    cell = {"outputs": [{"output_type": "stream", "name": "stderr", "text": ["\r  0%|   |\r"]},
                        {"output_type": "execute_result", "data": {"text/html": [f"<p>{REPO}/nbs at 0xdeadbeef00</p>"]}}]}
    cell["outputs"].append({"output_type": "display_data", "metadata": {}, "data": {
        run_notebooks.WIDGET: {"model_id": "b2ebe333a8cf40bc92b55c88285437d0", "version_major": 2}, "text/plain": ["VBox(...)"]}})
    run_notebooks.scrub_outputs(cell)
    assert len(cell["outputs"]) == 2 and cell["outputs"][0]["data"]["text/html"] == "<p>nbs at 0x…</p>"
    assert cell["outputs"][1]["data"] == {"text/plain": run_notebooks.WIDGET_NOTE}  # no model id that changes every run


def test_cells_that_never_run_are_recognised():
    c = lambda s: {"cell_type": "code", "source": s}
    assert run_notebooks.cell_flags(c("#| eval:false\nx")) & run_notebooks.SKIP
    assert run_notebooks.cell_flags(c("#|  cuda\nx")) & run_notebooks.SKIP
    assert "slow" in run_notebooks.cell_flags(c("#| slow\nx")) and not run_notebooks.cell_flags(c("#| slow\nx")) & run_notebooks.SKIP
    assert not run_notebooks.cell_flags(c("x = 1\n#| slow"))  # directives only count at the top


def test_nbdev_clean_keeps_outputs():
    "pyproject.toml says clear_all = false, so nbdev-clean (and CI's sync check) leaves executed notebooks as they are."
    import tomllib
    cfg = tomllib.loads((REPO/"pyproject.toml").read_text())["tool"]["nbdev"]
    assert cfg.get("clear_all") is False
    from nbdev.clean import clean_nb
    nb = {"metadata": {}, "cells": [{"cell_type": "code", "execution_count": 3, "metadata": {}, "source": "1",
          "outputs": [{"output_type": "execute_result", "execution_count": 3, "data": {"text/plain": "1"}, "metadata": {}}]}]}
    clean_nb(nb, clear_all=cfg["clear_all"])
    assert nb["cells"][0]["outputs"][0]["data"] == {"text/plain": "1"}


def test_scrub_keeps_an_embedded_image_whole():
    "A repr that embeds a PNG as a data: URI keeps every byte of it; the text around it is still scrubbed."
    import base64
    payload = base64.b64encode(bytes(range(256)) * 8).decode()
    payload = payload[:100] + "/0x7fab12cd+12s+" + payload[100:]      # base64 that looks like an address and a duration
    s = f"took 12.5 s at 0x7f00aa11bb22 ![loss](data:image/png;base64,{payload})"
    out = run_notebooks.scrub(s)
    assert f"data:image/png;base64,{payload})" in out and "0x7f00aa11bb22" not in out
