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


def test_readme_sends_a_newcomer_to_the_start_here_notebook_first():
    "The start-here notebook (a tutorial: it exports nothing) is named before the README's first section, and it runs the experiment in order."
    start = sorted(NBS.glob("*start_here*.ipynb"))
    assert [p.name for p in start] == ["00_start_here.ipynb"]
    head = (REPO/"README.md").read_text().split("\n## ", 1)[0]
    assert "Start with `nbs/00_start_here.ipynb`" in head, "README.md's opening does not point to nbs/00_start_here.ipynb: edit nbs/index.ipynb, run `make export`"
    nb = json.loads(start[0].read_text())
    assert docs.exported_module(nb) is None and docs.notebook_title(nb) == "Start here"
    src = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    calls = re.findall(r'stages=\["(\w+)"\]', src)
    assert calls == ["critique_revision", "sft", "preferences", "reward_model", "ppo", "dpo", "evaluation", "probe"], calls
    assert "plan(cfg, instance)" in src and "launch_stage(" in src


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
    """`module.name` in a notebook's markdown (e.g. `scoring.next_token_logprobs`) is a real attribute of that module.
    `module` is a module or subpackage of cai_workbench (`stages.sft`: a submodule) or a notebook's page name, which
    stands for the module the notebook exports (`judges.evaluate_principles` -> judges.rules, `models.x` -> engine.models)."""
    mods = {m.name for m in pkgutil.iter_modules(cai_workbench.__path__)}
    pages = {docs.page_name(p): docs.exported_module(json.loads(p.read_text())) for p in NOTEBOOKS}
    files = {"jsonl", "json", "html", "md", "yaml", "yml", "py", "csv", "png", "txt", "gz", "ipynb", "safetensors", "pt"}

    def found(M, name):  # `evaluation.judges` may also be a config key (a field of the module's XConfig, as YAML writes it)
        fields = {f for v in vars(M).values() if isinstance(v, type) and hasattr(v, "__dataclass_fields__") for f in v.__dataclass_fields__}
        sub = hasattr(M, "__path__") and importlib.util.find_spec(f"{M.__name__}.{name}") is not None
        return hasattr(M, name) or name in fields or sub

    bad = []
    for p in sorted(NBS.glob("*.ipynb")):
        for c in json.loads(p.read_text())["cells"]:
            if c["cell_type"] != "markdown": continue
            text = re.sub(r"^\| before \|.*?(?=^[^|]|\Z)", "", "".join(c["source"]), flags=re.M | re.S)   # a table of what moved names old names
            for mod, name in re.findall(r"`(?:cai_workbench\.)?([a-z_]+)\.([A-Za-z_]\w*)", text):
                cands = [f"cai_workbench.{m}" for m in ([mod] if mod in mods else []) + ([pages[mod]] if pages.get(mod) else [])]
                if cands and name not in files and not any(found(importlib.import_module(m), name) for m in cands):
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
    assert "## [cai_workbench.core.config](core.ipynb)" in api and "`derive_seed`" in api   # 00_core exports core.config


def _site_nav():
    nbs = {p.stem: json.loads(p.read_text()) for p in sorted(NBS.glob("*.ipynb"))}
    pages = {"index" if s == "index" else docs.page_name(NBS/f"{s}.ipynb"): s for s in nbs}
    modules = {s: docs.exported_module(nb) for s, nb in nbs.items()}
    return pages, modules, docs.site_nav(pages, modules, {s: docs.notebook_title(nb) for s, nb in nbs.items()})


def test_nav_is_grouped_like_the_package():
    "The site's navigation: the home page first, then one section per part of the package, from each notebook's `#| default_exp`."
    pages, modules, nav = _site_nav()
    start = sorted(n for n, s in pages.items() if "start_here" in s)
    assert start == ["start_here"], f"one start-here notebook (nbs/00_start_here.ipynb), first in the nav; found {start}"
    assert nav[:2] == [{"Start here": "start_here.ipynb"}, {"Home": "index.ipynb"}] and nav[-1] == {"API reference": "api.md"}
    sections = {k: v for d in nav[2:-1] for k, v in d.items()}
    assert list(sections)[:3] == ["Stages", "Pipeline & operations", "Studies"] and list(sections)[-1] == "Core reference"
    assert set(sections) <= set(docs.NAV_GROUPS), f"a notebook exports a module no section takes: {sections.get(docs.OTHER)}"
    files = {g: [f for e in items for f in e.values()] for g, items in sections.items()}
    where = {f.removesuffix(".ipynb"): g for g, fs in files.items() for f in fs if f.endswith(".ipynb")}
    assert sorted(where) == sorted(n for n in pages if n not in ("index", *start)), "every notebook page is in the nav exactly once"
    assert sum(len(fs) for fs in files.values()) == len(where) + 1                     # + the probe's link under Studies
    for name, stem in pages.items():
        mod = modules[stem]
        if mod and mod.startswith("stages."): assert where[name] == "Stages", (stem, mod)
        elif mod and mod.startswith("engine."): assert where[name] == "Engine", (stem, mod)
        elif mod in ("pipeline", "cli", "core.cloud", "core.tracking") or (mod or "").startswith("launch."):
            assert where[name] == "Pipeline & operations", (stem, mod)
        elif mod and mod.startswith("core."): assert where[name] == "Core reference", (stem, mod)
        elif mod is None and name not in ("index", *start): assert where[name] == "Studies", stem
    st = files["Stages"]   # in the order the pipeline runs them
    run_order = [f"{n}.ipynb" for n in ("critique_revision", "sft", "preferences", "reward_model", "ppo_runner", "rloo_grpo", "dpo", "evaluation", "probe")]
    assert [f for f in st if f in run_order] == run_order
    assert files["Studies"][0] == "study.ipynb" and "probe.html" in files["Studies"]   # the probe is a study too: a link
    assert files["Pipeline & operations"][:2] == ["pipeline.ipynb", "cli.ipynb"] and files["Core reference"][0] == "core.ipynb"


def test_nav_puts_a_start_here_notebook_first_and_places_new_notebooks_by_their_module():
    pages = {"index": "index", "start_here": "00_start_here", "sft": "03a_sft", "critique_revision": "03_critique_revision",
             "gate": "03d_gate", "widget": "14_widget", "new_study": "15_new_study", "thing": "16_thing"}
    modules = {"index": None, "00_start_here": None, "03a_sft": "stages.sft", "03_critique_revision": "stages.critique_revision",
               "03d_gate": "stages.gate", "14_widget": "ui.widget", "15_new_study": None, "16_thing": "newpart.thing"}
    nav = docs.site_nav(pages, modules, {"03a_sft": "sft", "15_new_study": "A new study"})
    assert nav[:2] == [{"Start here": "start_here.ipynb"}, {"Home": "index.ipynb"}]
    sections = {k: v for d in nav[2:-1] for k, v in d.items()}
    assert sections["Stages"] == [{"critique_revision": "critique_revision.ipynb"}, {"gate": "gate.ipynb"}, {"sft": "sft.ipynb"}]
    assert sections["UI"] == [{"widget": "widget.ipynb"}] and sections["Studies"] == [{"A new study": "new_study.ipynb"}]
    assert list(sections)[-1] == docs.OTHER and sections[docs.OTHER] == [{"thing": "thing.ipynb"}]   # a part no section names yet


@pytest.mark.skipif(not (REPO/"_docs_src"/"mkdocs.yml").exists(), reason="no staged site: `make docs` writes _docs_src/")
def test_staged_mkdocs_config_carries_the_grouped_nav():
    cfg = json.loads((REPO/"_docs_src"/"mkdocs.yml").read_text())
    staged = {p.stem for p in (REPO/"_docs_src"/"pages").glob("*.ipynb")}
    pages = {n: s for n, s in _site_nav()[0].items() if n in staged}
    if set(pages) != staged: pytest.skip("the staged site is older than the notebooks: rebuild with `make docs`")
    start = [{"Start here": "start_here.ipynb"}] if "start_here" in staged else []   # the start-here notebook first, where there is one
    assert cfg["nav"][:len(start) + 1] == start + [{"Home": "index.ipynb"}]
    assert [next(iter(d)) for d in cfg["nav"]][len(start) + 1] == "Stages"


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
