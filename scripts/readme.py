"""Write README.md from nbs/index.ipynb (markdown cells as they are, code cells fenced — unless `#| echo: false` — with
their saved markdown outputs, such as the benchmark tables), after regenerating the
notebook table in nbs/index.ipynb from the notebooks in nbs/.

nbdev's own `nbdev-readme` renders through Quarto, which is a separate binary download that offline machines
cannot fetch; the index notebook is plain markdown, so this is all it takes.

The table between `<!-- notebooks:start -->` and `<!-- notebooks:end -->` in the index is generated: one row per
notebook in nbs/ (name, the module it exports from `#| default_exp`, and the `> purpose` line under its H1 title),
so a new notebook appears in the README and on the docs home page by `make export`, and CI's sync check
(scripts/test.sh) fails when the committed index is out of date."""
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
NBS = root/"nbs"
START, END = "<!-- notebooks:start -->", "<!-- notebooks:end -->"


def notebook_row(p: Path) -> tuple[str, str, str]:
    "(notebook stem, module, purpose) of one notebook: purpose is the `> ` line under its H1 title."
    nb = json.loads(p.read_text())
    mod, purpose = "", ""
    for c in nb["cells"]:
        src = "".join(c["source"])
        if c["cell_type"] == "code" and not mod and (m := re.search(r"^#\|\s*default_exp\s+(\S+)", src, re.M)): mod = m.group(1)
        if c["cell_type"] == "markdown" and not purpose and src.startswith("# "):
            purpose = " ".join(l[1:].strip() for l in src.splitlines() if l.startswith(">"))
    if not purpose:  # every notebook should open with `# title` and `> purpose`: say so, but do not block the export
        print(f"warning: {p.relative_to(root)} has no H1 title with a `> purpose` line: its row in the index says nothing", file=sys.stderr)
        purpose = "—"
    return p.stem, mod, purpose


def notebook_table(nbs: Path = NBS) -> str:
    rows = [notebook_row(p) for p in sorted(nbs.glob("[0-9]*.ipynb"))]
    esc = lambda s: s.replace("|", "\\|")
    return "\n".join(["| notebook | module | what it does |", "|---|---|---|"] +
                     [f"| `{s}` | {f'`{m}`' if m else '—'} | {esc(d)} |" for s, m, d in rows])


def update_index(path: Path = NBS/"index.ipynb") -> bool:
    "Regenerate the table in the index notebook in place; True when it changed."
    nb = json.loads(path.read_text())
    cells = [c for c in nb["cells"] if c["cell_type"] == "markdown" and START in "".join(c["source"])]
    if len(cells) != 1: raise SystemExit(f"error: {path} needs exactly one markdown cell with {START} ... {END}")
    c = cells[0]; src = "".join(c["source"])
    if END not in src: raise SystemExit(f"error: {path}: {START} without {END}")
    new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: f"{START}\n{notebook_table(path.parent)}\n{END}", src, flags=re.S)
    if new == src: return False
    c["source"] = new.splitlines(keepends=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return True


def cell_markdown(cell) -> list[str]:
    "The saved `text/markdown` outputs of a code cell (e.g. `views.bench_table`): what the README shows of it."
    return ["".join(v) if isinstance(v, list) else v for o in cell.get("outputs", [])
            if (v := o.get("data", {}).get("text/markdown")) is not None]


def main():
    changed = update_index()
    nb = json.loads((NBS/"index.ipynb").read_text())
    parts = []
    for c in nb["cells"]:
        src = "".join(c["source"]).strip()
        if not src or src.startswith("#| hide"): continue
        if c["cell_type"] == "markdown": parts.append(src); continue
        if not re.search(r"^#\|\s*echo:\s*false", src, re.M):
            parts.append("```python\n" + "\n".join(l for l in src.splitlines() if not l.startswith("#|")) + "\n```")
        parts += cell_markdown(c)
    out = "<!-- generated from nbs/index.ipynb by scripts/readme.py: edit the notebook, not this file -->\n\n" + "\n\n".join(parts) + "\n"
    (root/"README.md").write_text(out)
    print(f"wrote {root/'README.md'} ({len(out)} chars)" + ("; regenerated the notebook table in nbs/index.ipynb" if changed else ""))


if __name__ == "__main__":
    main()
