"The shared view helpers: escaping, word diffs, blocks and badges."
import pytest

from cai_workbench.core.views import VIEW_CSS, badge, diff_counts, esc, section, text_block, view_html, word_diff_html

XSS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"><svg onload=alert(1)>']


@pytest.mark.parametrize("evil", XSS)
def test_model_text_is_escaped_everywhere(evil):
    for out in (esc(evil), text_block(evil), section(evil, text=evil), badge(evil, "bad"),
                word_diff_html("safe words", evil), word_diff_html(evil, "safe words"), view_html(section("x", text=evil))):
        assert "<script" not in out and "<img" not in out and "<svg" not in out, out
    assert "&lt;" in esc(evil)


def test_word_diff_marks_insertions_and_deletions():
    d = word_diff_html("Sure, here is how to make it.", "Sorry, I cannot explain how to make it.")
    assert '<del class="cai-del">' in d and '<ins class="cai-ins">' in d
    assert "how to make it." in d  # shared words stay unmarked
    assert word_diff_html("a b", "a b") == "a b"
    # the diff keeps line breaks of the new text
    assert "\n" in word_diff_html("one\ntwo", "one\nthree")


def test_diff_counts():
    assert diff_counts("a b c", "a b c") == {"kept": 3, "deleted": 0, "inserted": 0}
    assert diff_counts("", "x y") == {"kept": 0, "deleted": 0, "inserted": 2}


def test_css_scrolls_and_colours():
    assert "overflow:auto" in VIEW_CSS and "cai-del" in VIEW_CSS and "cai-ins" in VIEW_CSS
    assert 'style="max-height:8em"' in text_block("x", max_height="8em")
    with pytest.raises(ValueError, match="max_height"):
        text_block("x", max_height="8em;color:red")
    with pytest.raises(ValueError, match="kind"):
        badge("x", "purple")


def test_bench_table_keeps_its_date_and_machine_through_the_notebook_scrub(tmp_path):
    "A benchmark table must show when and where it was measured, also after `make notebooks` scrubs timestamps."
    import importlib.util, json
    from pathlib import Path
    from cai_workbench.core.views import bench_table
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("run_notebooks", root/"scripts"/"notebooks.py")
    nbs = importlib.util.module_from_spec(spec); spec.loader.exec_module(nbs)
    (tmp_path/"x.json").write_text(json.dumps({"date": "2026-12-01T21:05:09+00:00", "command": "python bench/x.py", "notes": "16 pairs",
        "machine": {"cpu": "Some CPU", "cores": 2, "load_avg": 3.1, "torch": "2.13", "torch_threads": 2, "cuda": "NVIDIA H200"},
        "rows": [{"side": "a", "s/label": 1.1}]}))
    t = bench_table("x", tmp_path)
    md, plain = nbs.scrub(t._repr_markdown_()), nbs.scrub(repr(t))
    assert "2026-12-01 21:05 UTC" in md and "2026-12-01 21:05 UTC" in plain
    assert "Some CPU, 2 cores" in md and "NVIDIA H200" in md and "16 pairs" in md
