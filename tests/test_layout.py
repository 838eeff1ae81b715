"""The package's layout: imports go one way, between layers and inside them, and no module is too long.

The graph is read from the source with `ast`, so an import inside a function counts as much as one at the top."""
import ast, re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1]/"cai_workbench"
# lowest first; a module may import from its own layer or any layer below (feedback, judges and rl share a layer)
LAYERS = {"core": 0, "inputs": 1, "engine": 2, "models": 2, "feedback": 3, "judges": 3, "rl": 3, "ui": 4,
          "stages": 5, "pipeline": 6, "launch": 7, "cli": 8}
MAX_LINES = 410


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py")) if p.name != "_modidx.py"}


def imports_of(name: str, path: Path, known: set) -> set:
    "Every package module that `name` imports, at any depth of its code."
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known: t = t.rpartition(".")[0]   # `from .engine import models` names a module
            if t and t != name and t.startswith("cai_workbench."): out.add(t)
    return out


def layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def graph() -> dict:
    mods = modules()
    return {m: imports_of(m, p, set(mods)) for m, p in mods.items()}


def test_the_graph_is_read_from_the_source():
    g = graph()
    assert "cai_workbench.core.io" in g["cai_workbench.core.run"]
    assert "cai_workbench.engine.generator" in g["cai_workbench.stages.critique_revision"]
    assert len(g) > 40


def test_no_module_imports_a_higher_layer():
    bad = [f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
           for m, deps in graph().items() for d in sorted(deps)
           if layer(m) is not None and layer(d) is not None and layer(d) > layer(m)]
    assert not bad, "upward imports:\n" + "\n".join(bad)


def find_cycle(g: dict) -> list | None:
    state, stack = {}, []
    def visit(m):
        state[m] = 1; stack.append(m)
        for d in sorted(g.get(m, ())):
            if d not in g: continue
            if state.get(d) == 1: return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)): return c
        state[m] = 2; stack.pop()
    for m in sorted(g):
        if m not in state and (c := visit(m)): return c


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_is_in_a_layer():
    assert not [m for m in modules() if m != "cai_workbench" and layer(m) is None]


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_too_long(name):
    n = len(modules()[name].read_text().splitlines())
    assert n <= MAX_LINES, f"{name} has {n} lines (at most {MAX_LINES}): split it along a seam the notebook shows"


def test_the_readme_imports_work_unchanged():
    from cai_workbench.core import Run
    from cai_workbench.pipeline import load_config, run_pipeline
    from cai_workbench.models import load_model, Generator
    from cai_workbench.engine.generator import Generator as G
    from cai_workbench.core.run import Run as R
    assert Generator is G and Run is R and callable(load_config) and callable(run_pipeline) and callable(load_model)


def moved_rows() -> list:
    "(before names, now modules) of each row of the README's 'What moved' table."
    text = (PKG.parent/"README.md").read_text().split("### What moved", 1)[1].split("\n#", 1)[0]
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"): continue
        before = [b for b in re.findall(r"`([\w.]+)`", cells[0])]
        now = re.findall(r"`([\w.<>]+ ?[\w<>]*)`", cells[1])
        rows.append((before, now))
    return rows


def test_what_moved_names_modules_that_exist_and_old_ones_that_do_not():
    import importlib, importlib.util
    rows = moved_rows()
    assert len(rows) >= 10
    kept = {"core", "models", "pipeline", "judges"}    # still import: what the README documents, and packages now
    for before, now in rows:
        for b in before:
            mod = b.removeprefix("cai_workbench.").split(".")[0]
            if "." not in b.removeprefix("cai_workbench.") and mod not in kept:
                assert importlib.util.find_spec(f"cai_workbench.{mod}") is None, f"cai_workbench.{mod} still exists"
        for n in now:
            if not re.fullmatch(r"[a-z_]+\.[a-z_<>. ]+", n): continue
            names = [n.replace("<same name>", b.split(".")[-1]) for b in before] if "<same name>" in n else [n]
            for name in names:
                mod, _, attr = name.rpartition(".")
                try: importlib.import_module(f"cai_workbench.{name}")
                except ModuleNotFoundError:
                    assert hasattr(importlib.import_module(f"cai_workbench.{mod}"), attr), name
