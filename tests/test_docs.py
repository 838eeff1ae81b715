"""The documentation: the index lists every notebook, prose names only functions that exist, the `Docs:` links in the
module docstrings and pyproject.toml name pages the docs build makes, and scripts/docs.py stages notebooks as intended.

Fast (no build, no browser). When a built site is there (`make docs` -> _site/) its pages and links are checked too;
tests/e2e/test_docs_e2e.py opens every page in Chromium."""
import importlib, importlib.util, json, pkgutil, re, tomllib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

import cai_workbench

REPO = Path(__file__).resolve().parents[1]
NBS, SITE = REPO/"nbs", REPO/"_site"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, REPO/"scripts"/f"{name}.py")
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m


docs, readme = _load("docs"), _load("readme")
NOTEBOOKS = sorted(NBS.glob("[0-9]*.ipynb"))
PAGES = {docs.page_name(p) for p in NOTEBOOKS} | {"index"}
DOC_URL = tomllib.loads((REPO/"pyproject.toml").read_text())["project"]["urls"]["Documentation"]


def test_index_table_lists_every_notebook():
    idx = "".join(c for cell in json.loads((NBS/"index.ipynb").read_text())["cells"] for c in cell["source"])
    table = idx.split(readme.START)[1].split(readme.END)[0]
    listed = re.findall(r"^\| `([^`]+)` \|", table, re.M)
    assert listed == [p.stem for p in NOTEBOOKS], "the notebook table in nbs/index.ipynb is stale: run `make export`"
    assert table.strip() == readme.notebook_table(), "the notebook table in nbs/index.ipynb is stale: run `make export`"
    readme_md = (REPO/"README.md").read_text()
    assert all(f"| `{p.stem}` |" in readme_md for p in NOTEBOOKS), "README.md is stale: run `make export`"


def test_readme_carries_the_index_notebooks_executed_tables():
    "The benchmark tables on the home page are executed output of the index notebook; README.md shows them too."
    nb = json.loads((NBS/"index.ipynb").read_text())
    outs = [m for c in nb["cells"] if c["cell_type"] == "code" for m in readme.cell_markdown(c)]
    assert any("bench/ppo_memory.py" in m for m in outs), "nbs/index.ipynb shows no saved benchmark table: run `make notebooks NBS=nbs/index.ipynb`"
    readme_md = (REPO/"README.md").read_text()
    missing = [m[:100] for m in outs if m.strip() not in readme_md]
    assert not missing, f"README.md lacks the index notebook's saved tables (run `make export`): {missing}"
    assert "import bench_table" not in readme_md, "an `#| echo: false` cell's code leaked into README.md"


def test_notebook_prose_names_only_existing_functions():
    "`module.name` in a notebook's markdown (e.g. `scoring.next_token_logprobs`) is a real attribute of that module."
    mods = {m.name for m in pkgutil.iter_modules(cai_workbench.__path__)}
    files = {"jsonl", "json", "html", "md", "yaml", "yml", "py", "csv", "png", "txt", "gz", "ipynb", "safetensors", "pt"}
    bad = []
    for p in sorted(NBS.glob("*.ipynb")):
        for c in json.loads(p.read_text())["cells"]:
            if c["cell_type"] != "markdown": continue
            for mod, name in re.findall(r"`(?:cai_workbench\.)?([a-z_]+)\.([A-Za-z_]\w*)", "".join(c["source"])):
                M = importlib.import_module(f"cai_workbench.{mod}") if mod in mods else None
                # `evaluation.judges` may also be a config key (a field of the module's XConfig, as YAML writes it)
                fields = {f for v in vars(M).values() if isinstance(v, type) and hasattr(v, "__dataclass_fields__")
                          for f in v.__dataclass_fields__} if M else set()
                if M and name not in files and not hasattr(M, name) and name not in fields:
                    bad.append(f"{p.name}: `{mod}.{name}`")
    assert not bad, "notebook prose names functions that are not there (moved or renamed?):\n" + "\n".join(sorted(set(bad)))


def test_docstring_docs_links_name_pages_the_build_makes():
    base = DOC_URL.rstrip("/") + "/"
    bad = []
    for p in sorted((REPO/"cai_workbench").glob("*.py")):
        for url in re.findall(r"^Docs: (\S+?)(?:\"\"\")?$", p.read_text(), re.M):
            page = url.removeprefix(base)
            if not url.startswith(base) or not page.endswith(".html.md") or page.removesuffix(".html.md") not in PAGES:
                bad.append(f"{p.name}: {url}")
    assert not bad, f"Docs: links that name no page of the build (pages: {sorted(PAGES)}):\n" + "\n".join(bad)
    assert urlparse(DOC_URL).path.rstrip("/") == "/cai-workbench", "pyproject's Documentation URL: the site's root"


def test_stage_notebook_translates_quarto_directives():
    nb = {"metadata": {"widgets": {"state": {}}, "kernelspec": {"name": "python3"}}, "cells": [
        {"cell_type": "raw", "metadata": {}, "source": "---\ntitle: views\ndescription: 'HTML helpers: escaping'\noutput-file: views.html\n---\n"},
        {"cell_type": "markdown", "metadata": {}, "source": "<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->"},
        {"cell_type": "code", "metadata": {}, "source": "#| echo: false\n#| output: asis\nshow_doc(esc)", "outputs": [{"output_type": "execute_result"}]},
        {"cell_type": "code", "metadata": {}, "source": "#| code-fold: true\nx = 1", "outputs": []},
        {"cell_type": "code", "metadata": {}, "source": "#| echo: false\nnothing()", "outputs": []}]}
    out = docs.stage_notebook(nb)
    assert out["metadata"] == {"kernelspec": {"name": "python3"}}  # no widget state, no widget JS on the site
    assert out["cells"][0] == {"cell_type": "markdown", "id": "page-title", "metadata": {}, "source": "# views\n\n> HTML helpers: escaping"}
    assert out["cells"][1]["source"] == "show_doc(esc)" and out["cells"][1]["metadata"]["tags"] == ["hide-input"]
    assert out["cells"][2]["source"] == "x = 1" and "tags" not in out["cells"][2]["metadata"]
    assert len(out["cells"]) == 3  # the warning and the output-less hidden cell are gone
    sd = {"cell_type": "code", "metadata": {}, "source": "#| echo: false\nshow_doc(EloResult.table)",
          "outputs": [{"output_type": "execute_result", "data": {"text/markdown": "---\n\n### EloResult.table\n\n*doc*"}}]}
    md = docs.stage_notebook({"metadata": {}, "cells": [sd]})["cells"][0]["outputs"][0]["data"]["text/markdown"]
    assert '<a id="eloresult.table"></a>\n\n### EloResult.table' in md  # the anchor nbdev's _modidx links to
    link = {"cell_type": "markdown", "metadata": {}, "source": f"see [`load_prompts`]({DOC_URL.rstrip('/')}/prompts.html#load_prompts)"}
    assert docs.stage_notebook({"metadata": {}, "cells": [link]})["cells"][0]["source"] == "see [`load_prompts`](prompts.html#load_prompts)"
    head = {"cell_type": "markdown", "metadata": {}, "source": "## The `Generator`\n\ntext with `code`"}
    assert docs.stage_notebook({"metadata": {}, "cells": [head]})["cells"][0]["source"] == "## The Generator\n\ntext with `code`"


def test_api_page_links_only_to_pages_that_exist():
    api = docs.api_page(dict.fromkeys(PAGES))
    links = re.findall(r"\]\(([^)]+)\)", api)
    assert links and all(l.removesuffix(".ipynb") in PAGES for l in links)
    assert "## [cai_workbench.core](core.ipynb)" in api and "`derive_seed`" in api


class _Links(HTMLParser):
    def __init__(self):
        super().__init__(); self.hrefs, self.ids = [], set()
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"): self.ids.add(a["id"])
        if tag == "a" and a.get("href"): self.hrefs.append(a["href"])


def _parse(path: Path) -> _Links:
    p = _Links(); p.feed(path.read_text(errors="replace")); return p


@pytest.mark.skipif(not (SITE/"index.html").exists(), reason="no built site: `make docs` writes _site/")
def test_built_site_has_every_page_and_no_broken_internal_link():
    for name in PAGES | {"api"}:
        assert (SITE/f"{name}.html").exists(), f"_site/{name}.html is missing"
    for name in PAGES - {"index"}:
        assert (SITE/f"{name}.html.md").exists(), f"_site/{name}.html.md (the page the Docs: links name) is missing"
    parsed, broken = {}, []
    for page in sorted(p for p in SITE.glob("*.html") if p.name != "404.html"):  # 404.html links from the hosted root
        for href in _parse(page).hrefs:
            if urlparse(href).scheme or href.startswith(("mailto:", "//")): continue
            path, frag = urldefrag(href)
            target = (page.parent/path).resolve() if path else page
            if target.is_dir(): target = target/"index.html"
            if not target.exists(): broken.append(f"{page.name}: {href}"); continue
            if frag and target.suffix == ".html":
                ids = parsed.setdefault(target, _parse(target).ids)
                if frag not in ids: broken.append(f"{page.name}: {href} (no id {frag!r})")
    assert not broken, "broken internal links:\n" + "\n".join(broken[:50])
