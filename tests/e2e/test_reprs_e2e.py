"""Rich reprs in a real browser (issue 32 item 7): strings from data — a run-folder name, stage names, a prompt file's
`source`, run names in a comparison — show as text in JupyterLab, never as elements (outputs a kernel produces are
trusted, so unescaped Markdown would inject HTML). The notebook builds its own tiny fixtures: no model needed."""
from __future__ import annotations

import pytest

from test_viewers_e2e import write_notebook

pytestmark = pytest.mark.e2e

IMG = "<img src=x onerror=\"alert('xss-repr')\">"
LINK = "[click](https://evil.example/x)"


def test_result_reprs_render_data_as_text(nb, lab):
    name = write_notebook(lab.root/"repr_escape.ipynb", f"""
        from pathlib import Path
        from cai_workbench.core.run import Run
        from cai_workbench.pipeline import PipelineResult
        from cai_workbench.stages.critique_revision import CritiqueResult
        from cai_workbench.launch.sweeps import Comparison
        BAD = {IMG + " " + LINK!r}
        run = Run.create(Path("runs")/{IMG.replace('/', '')!r})
        run.update_manifest(stages={{BAD: {{"status": BAD, "wall_s": 1.0, "summary": {{"source": BAD}}}}}})
        rec = lambda src: {{"total_tokens": 3, "final_response": "a", "initial_response": "b", "stop_reason": "rounds",
                           "rounds": [], "n_rounds": 1, "source": src}}
        row = {{"run": BAD, "stage": BAD, "harmless": 0.5, "harmless_ci": [0.4, 0.6], "n_harmful": 4, "helpful": None,
               "helpful_ci": None, "n_benign": 0, "win_rate_vs_base": None, "config": {{"k": BAD}}}}
        run
        """, "PipelineResult(run)", "CritiqueResult(run.path, [rec(BAD), rec('demo')])", "Comparison([row], ['k'])")
    nb.open(name); nb.run_all(timeout=120)
    assert not nb.tracebacks(), nb.tracebacks()
    for i, what in enumerate(["Run", "PipelineResult", "CritiqueResult", "Comparison"]):
        out = nb.output(i)
        out.locator(".jp-RenderedMarkdown").first.wait_for(timeout=20_000)
        assert IMG in out.text_content(), f"{what}: the payload is not shown as text"
        assert out.locator("img").count() == 0, f"{what}: an <img> was injected"
        # (JupyterLab's GFM links a bare URL, showing the URL itself; a link *named* by the data must not exist)
        assert out.locator("a", has_text="click").count() == 0, f"{what}: a link was injected"
    nb.page.wait_for_timeout(300)            # an onerror handler would have fired by now
    assert nb.page.locator(".jp-OutputArea img[src='x']").count() == 0
    assert not nb.dialogs, nb.dialogs
    nb.screenshot("repr_escape")
