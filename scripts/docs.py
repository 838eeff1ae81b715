"""Build the documentation site from the notebooks and their saved outputs (`make docs`).

    .venv/bin/python scripts/docs.py                  # mkdocs-material + mkdocs-jupyter -> _site/
    .venv/bin/python scripts/docs.py --engine quarto  # nbdev's own `nbdev-docs` (needs the Quarto binary) -> _docs/
    .venv/bin/python scripts/docs.py --no-proc        # reuse _proc/ from the last build

1. nbdev's own notebook processors (those `nbdev-proc-nbs` runs for Quarto) turn nbs/ into _proc/: `#| hide` cells
   removed, a `show_doc` cell added after each exported definition — the API reference — and the saved outputs
   kept. One change: to render the show_doc cells nbdev would also run every cell that imports anything (with the
   embedded model's cells among them: 20+ minutes); here only exported cells, show_doc cells and the import
   statements themselves run (seconds per notebook).
2. Each processed notebook is staged in _docs_src/ under the name nbdev gives its page (`03_critique_revision` ->
   `critique_revision`), translating what Quarto would read: the front-matter cell becomes the H1 title and
   `> purpose` line, `#| echo: false` cells keep only their output, other `#|` directive lines are dropped.
   `index.ipynb` (the README's content) is the home page; `api.md` lists every exported name with its page
   (in _docs_src/pages/, beside the generated _docs_src/mkdocs.yml). The navigation (`nav`) is grouped like the
   package: a `*start_here*` notebook first when there is one, the home page, then one section per group of the
   module each notebook exports (its `#| default_exp`: stages.* -> Stages, engine.* -> Engine, ...; see `NAV_GROUPS`),
   so a new notebook lands in its section by itself; notebooks that export nothing are Studies.
3. `mkdocs build` writes _site/ with one `<name>.html` per notebook (nbdev's names, so the `Docs:` links in the
   module docstrings resolve), and `<name>.html.md` beside it: the page as markdown, which those links name.
Nothing is executed beyond step 1's show_doc cells: `make notebooks` refreshes the outputs.
"""
from __future__ import annotations

import argparse, ast, json, os, re, shutil, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS, PROC, SRC, SITE = ROOT/"nbs", ROOT/"_proc", ROOT/"_docs_src", ROOT/"_site"
_DIRECTIVE = re.compile(r"^\s*#\|\s*(.*?)\s*$")


def page_name(nb_path: Path) -> str:
    "nbdev's page name for a notebook: the file stem without its numeric prefix (`03a_sft` -> `sft`)."
    from nbdev.config import nbpath2html
    return nbpath2html(Path(nb_path.name)).with_suffix("").name


def process_notebook(src: Path, dst: Path) -> str:
    "nbdev's doc processors on one notebook (see the module docstring, step 1); writes `dst`, returns its name."
    os.environ["IN_TEST"] = "1"
    from fastcore.nbio import read_nb, write_nb
    from nbdev.processors import FilterDefaults, _show_docs, cell_lang, exec_show_docs

    class exec_show_docs_only(exec_show_docs):
        "exec_show_docs without the notebook's own work: exported cells, show_doc cells and import statements only."
        def __call__(self, cell):
            if not self.nb.has_docs_ or not hasattr(self, "k") or cell.cell_type != "code" or cell_lang(cell) != "python": return
            if not cell.source or cell.directives_.get("eval", "").lower() == "false": return
            trees = cell.parsed_() or []
            exported = bool(cell.directives_.keys() & {"export", "exports", "exporti", "exec_doc"})
            if exported or _show_docs(trees): self.k.cell(cell)
            else:
                imports = [n for n in trees if isinstance(n, (ast.Import, ast.ImportFrom))]
                if imports: self.k.run_cell("\n".join(ast.unparse(n) for n in imports))
            e = self.k.exc
            if isinstance(e, NameError) and not exported:  # show_doc of a function annotated with a class defined later
                self.deferred = getattr(self, "deferred", []) + [cell]
            elif e: raise RuntimeError(f"{src.name}: show_doc processing failed in cell {cell.idx_}: {type(e).__name__}: {e}") from e

        def end(self):
            for cell in getattr(self, "deferred", []):  # now that the whole notebook's definitions exist
                self.k.cell(cell)
                if (e := self.k.exc): raise RuntimeError(f"{src.name}: show_doc failed in cell {cell.idx_}: {type(e).__name__}: {e}") from e
            super().end()

    class Procs(FilterDefaults):
        def base_procs(self): return [exec_show_docs_only if p is exec_show_docs else p for p in super().base_procs()]

    nb = read_nb(src)
    Procs()(nb)
    write_nb(nb, dst)
    return dst.name


def process_all(nbs: Path = NBS, out: Path = PROC, workers: int = 0) -> list[Path]:
    "Process every notebook of `nbs` into `out` (in parallel); stale ones removed."
    out.mkdir(exist_ok=True)
    srcs = sorted(nbs.glob("*.ipynb"))
    for old in out.glob("*.ipynb"):
        if not (nbs/old.name).exists(): old.unlink()
    def one(p):  # a child process per notebook: a fresh CaptureShell and import state for each, as nbdev does
        r = subprocess.run([sys.executable, __file__, "--proc-one", str(p), str(out/p.name)], cwd=ROOT, capture_output=True, text=True)
        if r.returncode: raise SystemExit(f"error: processing {p.name} for the docs failed:\n{r.stderr[-3000:]}")
    with ThreadPoolExecutor(workers or os.cpu_count() or 2) as ex: list(ex.map(one, srcs))
    return [out/p.name for p in srcs]


def _frontmatter(src: str) -> dict:
    import yaml
    m = re.match(r"\s*---\s*\n(.*?)\n---", src, re.S)
    return (yaml.safe_load(m.group(1)) or {}) if m else {}


def _doc_url() -> str:
    import tomllib
    return tomllib.loads((ROOT/"pyproject.toml").read_text())["project"]["urls"]["Documentation"].rstrip("/") + "/"


def _relative_links(text: str) -> str:
    "Links into the hosted docs made relative; nbdev's lower-cased symbol anchors kept (pages add those ids)."
    return text.replace(_doc_url(), "")


_CELL_KEYS = {"code": {"cell_type", "id", "metadata", "source", "outputs", "execution_count"},
              "markdown": {"cell_type", "id", "metadata", "source", "attachments"}, "raw": {"cell_type", "id", "metadata", "source", "attachments"}}
_OUT_KEYS = {"output_type", "data", "metadata", "execution_count", "name", "text", "ename", "evalue", "traceback"}


def stage_notebook(nb: dict) -> dict:
    "A processed notebook made readable by mkdocs-jupyter (see the module docstring, step 2)."
    cells = []
    for c in nb["cells"]:
        src = "".join(c.get("source", ""))
        if c["cell_type"] == "raw" and src.lstrip().startswith("---"):
            fm = _frontmatter(src)
            title, desc = fm.get("title"), fm.get("description")
            if title: cells.append({"cell_type": "markdown", "id": "page-title", "metadata": {}, "source": f"# {title}" + (f"\n\n> {desc}" if desc else "")})
            continue
        if c["cell_type"] == "markdown" and src.startswith("<!-- WARNING: THIS FILE WAS AUTOGENERATED"): continue
        if c["cell_type"] == "code":
            lines = src.splitlines()
            flags = []
            while lines and (m := _DIRECTIVE.match(lines[0])): flags.append(re.sub(r"\s*:\s*", ": ", m.group(1).lower())); lines.pop(0)
            c = dict(c, source="\n".join(lines), metadata=dict(c.get("metadata", {})))
            if c["source"].startswith("show_doc("):  # nbdev's symbol anchors (`#eloresult.table`, as _modidx links them)
                for o in c.get("outputs", []):
                    if "text/markdown" in o.get("data", {}):
                        o["data"]["text/markdown"] = re.sub(r"^(#{2,4}) ([\w.]+)[ \t]*$", lambda m: f'<a id="{m.group(2).lower()}"></a>\n\n{m.group(0)}',
                                                            "".join(o["data"]["text/markdown"]), count=1, flags=re.M)
            if "echo: false" in flags or not c["source"].strip():
                c["metadata"]["tags"] = sorted({*c["metadata"].get("tags", []), "hide-input"})
                if not c.get("outputs"): continue
        cells.append(c)
    for c in cells:  # nbdev's add_links points at the hosted site: this build is that site, so links are relative
        if c["cell_type"] == "markdown":  # no `code` in headings: mkdocs-jupyter's TOC slugs it to '_1', the page's id differs
            c["source"] = re.sub(r"^(#{1,6} .*)$", lambda m: m.group(1).replace("`", ""), _relative_links("".join(c["source"])), flags=re.M)
        for o in c.get("outputs", []):
            for k in ("text/markdown", "text/html"):
                if k in o.get("data", {}): o["data"][k] = _relative_links("".join(o["data"][k]))
    for c in cells:  # nbdev's processing leaves its own keys (has_sd, idx_, transient...) that nbformat rejects
        for k in [k for k in c if k not in _CELL_KEYS[c["cell_type"]]]: del c[k]
        c["metadata"] = {k: v for k, v in c.get("metadata", {}).items() if k in ("tags",)}  # no timings (CaptureShell's)
        for o in c.get("outputs", []):
            for k in [k for k in o if k not in _OUT_KEYS]: del o[k]
        if c["cell_type"] == "code": c.setdefault("outputs", []); c.setdefault("execution_count", None)
    meta = {k: v for k, v in nb.get("metadata", {}).items() if k in ("kernelspec", "language_info")}
    return dict(nb, cells=cells, metadata=meta)  # no widget state: nothing on the site needs a kernel or widget JS


def api_page(pages: dict[str, str]) -> str:
    "Markdown listing every exported name of every module, linked to the page that documents it."
    from cai_workbench._modidx import d
    out = ["# API reference", "", "Every public name, by module; each page shows its signature and docstring (`show_doc`)", ""]
    for mod, syms in sorted(d["syms"].items()):
        names = sorted({k[len(mod) + 1:].split(".")[0] for k in syms if k.startswith(mod + ".")})   # `Run`, not `Run.create`
        names = [n for n in names if not n.startswith("_")]
        if not names: continue
        page = next(iter(syms.values()))[0].split("#")[0]
        if page.removesuffix(".html") not in pages: continue
        out += [f"## [{mod}]({page.removesuffix('.html')}.ipynb)", "", ", ".join(f"`{n}`" for n in names), ""]  # mkdocs resolves .ipynb -> .html
    return "\n".join(out) + "\n"


# The site's sections, in order: each holds the notebooks whose exported module matches one of its prefixes ("stages."
# = every stages.* module; "pipeline" = that module), the longest match winning (core.cloud is operations, other core.*
# modules the core reference). Notebooks that export nothing (12_study) are Studies; `index` is the home page and a
# `*start_here*` notebook goes first.
NAV_GROUPS = {
    "Stages": ["stages."],
    "Pipeline & operations": ["pipeline", "cli", "launch.", "core.cloud", "core.tracking"],
    "Studies": [],
    "Engine": ["engine."],
    "Inputs": ["inputs."],
    "Feedback": ["feedback."],
    "Judges": ["judges."],
    "RL": ["rl."],
    "UI": ["ui."],
    "Core reference": ["core."],
}
NAV_LEAD = {"Pipeline & operations": ["pipeline", "cli"]}   # listed first in their section; the rest in notebook order
STUDIES, OTHER = "Studies", "More"   # OTHER: a module of a package no section names yet (after the sections)
ALSO_IN = {"stages.probe": STUDIES}  # pages linked from a second section too: the known-answer probe is a study as well


def exported_module(nb: dict) -> str | None:
    "The module a notebook exports (its `#| default_exp` cell, e.g. `stages.sft`), or None."
    for c in nb.get("cells", []):
        if c.get("cell_type") == "code" and (m := re.search(r"^\s*#\|\s*default_exp\s+(\S+)", "".join(c.get("source", "")), re.M)):
            return m.group(1)
    return None


def notebook_title(nb: dict) -> str | None:
    "The page's title: the front matter's `title`, else the first markdown H1 (`# sft`), as the page shows it."
    for c in nb.get("cells", []):
        src = "".join(c.get("source", ""))
        if c.get("cell_type") == "raw" and (t := _frontmatter(src).get("title")): return str(t)
        if c.get("cell_type") == "markdown" and (m := re.match(r"#\s+(.+)", src.lstrip())): return m.group(1).strip().replace("`", "")
    return None


def nav_group(module: str | None) -> str:
    "The nav section of a notebook that exports `module` (see `NAV_GROUPS`)."
    if module is None: return STUDIES
    hits = [(len(p), g) for g, ps in NAV_GROUPS.items() for p in ps if (module.startswith(p) if p.endswith(".") else module == p)]
    return max(hits)[1] if hits else OTHER


def _stage_order() -> list[str]:
    "Stage modules in the order the pipeline runs them (critique_revision, sft, preferences, ...)."
    try:
        from cai_workbench.pipeline import STAGES
        return list(dict.fromkeys(spec.module.removeprefix("cai_workbench.") for spec in STAGES.values()))
    except Exception: return []   # the package not importable: notebook order


def site_nav(pages: dict[str, str], modules: dict[str, str | None], titles: dict[str, str | None] | None = None) -> list:
    """mkdocs' `nav` from {page name: notebook stem} (as `stage` makes it), {stem: the module it exports or None} and
    {stem: page title}: [Start here (a `*start_here*` notebook, when there is one), Home (index), one
    {section: [{title: page}]} per non-empty section of NAV_GROUPS, API reference].
    Stages run in pipeline order (a stage notebook the pipeline does not run follows the one it shares its number
    with: 03d_revision_gate after 03_critique_revision); other sections in notebook order."""
    titles, mod = titles or {}, lambda n: modules.get(pages[n])
    entry = lambda n: {titles.get(pages[n]) or n: f"{n}.ipynb"}
    start = sorted(n for n, s in pages.items() if "start_here" in s)
    rest = [n for n in pages if n != "index" and n not in start]
    sections = {g: [] for g in [*NAV_GROUPS, OTHER]}
    for n in rest: sections[nav_group(mod(n))].append(n)
    order = {m: i for i, m in enumerate(_stage_order())}
    num = lambda n: re.match(r"\d*", pages[n]).group(0)
    first = {}   # notebook number -> the earliest pipeline stage a notebook with that number documents
    for n in sections["Stages"]:
        if mod(n) in order and num(n): first[num(n)] = min(first.get(num(n), len(order)), order[mod(n)])
    sections["Stages"].sort(key=lambda n: (order.get(mod(n), first.get(num(n), len(order))), pages[n]))
    for g, items in sections.items():
        if g != "Stages":
            lead = NAV_LEAD.get(g, [])
            items.sort(key=lambda n: (lead.index(mod(n)) if mod(n) in lead else len(lead), pages[n]))
    for m, g in ALSO_IN.items():   # a link, not a second copy of the page: mkdocs keeps one place per page
        sections[g] += [{f"{titles.get(pages[n]) or n} (in {nav_group(m)})": f"{n}.html"} for n in rest if mod(n) == m and g != nav_group(m)]
    nav = [{"Start here": f"{n}.ipynb"} for n in start] + ([{"Home": "index.ipynb"}] if "index" in pages else [])
    nav += [{g: [x if isinstance(x, dict) else entry(x) for x in items]} for g, items in sections.items() if items]
    return nav + [{"API reference": "api.md"}]


def stage(proc: Path = PROC, src: Path = SRC, nbs: Path = NBS) -> dict[str, str]:
    "Stage every processed notebook into `src`/pages (+ `src`/mkdocs.yml, its `site_nav`); return {page name: notebook stem}."
    if src.exists(): shutil.rmtree(src)
    dest = src/"pages"; dest.mkdir(parents=True)
    pages = {}
    for p in sorted(proc.glob("*.ipynb")):
        name = "index" if p.stem == "index" else page_name(p)
        if name in pages: raise SystemExit(f"error: {p.name} and {pages[name]}.ipynb both make the page {name}.html")
        (dest/f"{name}.ipynb").write_text(json.dumps(stage_notebook(json.loads(p.read_text())), indent=1))
        pages[name] = p.stem
    (dest/"api.md").write_text(api_page(pages))
    def source(stem):  # the notebook as written: its `#| default_exp` cell (nbdev's processing drops it)
        return json.loads(((nbs/f"{stem}.ipynb") if (nbs/f"{stem}.ipynb").exists() else proc/f"{stem}.ipynb").read_text())
    nbs_ = {stem: source(stem) for stem in pages.values()}
    nav = site_nav(pages, {s: exported_module(nb) for s, nb in nbs_.items()}, {s: notebook_title(nb) for s, nb in nbs_.items()})
    (src/"mkdocs.yml").write_text(json.dumps({"INHERIT": str(ROOT/"docs"/"mkdocs.yml"), "docs_dir": "pages",
                                               "site_dir": str(SITE), "nav": nav}, indent=1))
    return pages


def page_markdown(nb_path: Path, out: Path) -> None:
    "Write the staged notebook as markdown (`<name>.html.md`), images beside it in `<name>_files/`."
    import nbformat
    from nbconvert import MarkdownExporter
    from traitlets.config import Config
    cfg = Config(); cfg.TagRemovePreprocessor.enabled = True; cfg.TagRemovePreprocessor.remove_input_tags = {"hide-input"}
    ex = MarkdownExporter(config=cfg)
    body, res = ex.from_notebook_node(nbformat.read(nb_path, as_version=4),
                                      resources={"output_files_dir": f"{nb_path.stem}_files"})
    for fn, data in res.get("outputs", {}).items():
        (out.parent/fn).parent.mkdir(parents=True, exist_ok=True); (out.parent/fn).write_bytes(data)
    out.write_text(body)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=("mkdocs", "quarto"), default=os.environ.get("DOCS_ENGINE", "mkdocs"))
    ap.add_argument("--no-proc", dest="proc", action="store_false", help="reuse _proc/ (skip nbdev-proc-nbs)")
    ap.add_argument("--proc-one", nargs=2, type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.proc_one: process_notebook(*a.proc_one); return 0
    bin_ = Path(sys.executable).parent
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", MPLBACKEND="Agg",
               TOKENIZERS_PARALLELISM="false", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if a.engine == "quarto":
        if not shutil.which("quarto"): raise SystemExit("error: --engine quarto needs the Quarto binary on PATH (https://quarto.org); "
                                                        "without it use the default engine (mkdocs)")
        return subprocess.run([str(bin_/"nbdev-docs")], cwd=ROOT, env=env).returncode
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"}); sys.path.insert(0, str(ROOT))
    if a.proc: process_all()
    elif not PROC.exists(): raise SystemExit("error: no _proc/ to reuse: run without --no-proc")
    pages = stage()
    subprocess.run([str(bin_/"mkdocs"), "build", "--clean", "-q", "-f", str(SRC/"mkdocs.yml")], cwd=SRC, env=env, check=True)
    for name in pages: page_markdown(SRC/"pages"/f"{name}.ipynb", SITE/f"{name}.html.md")
    missing = [n for n in pages if not (SITE/f"{n}.html").exists()]
    if missing: raise SystemExit(f"error: mkdocs wrote no page for {missing}")
    print(f"wrote {SITE} ({len(pages)} notebook pages + API reference); open {SITE/'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
