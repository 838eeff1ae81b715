"""Our own code uses transformers' current names (no FutureWarning from our calls) and one seed helper (core.derive_seed).

Static checks over cai_workbench/*.py (fast): each names the file and line to fix."""
import ast, re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1]/"cai_workbench"
# transformers 5 renamed these (TrainingArguments warns with FutureWarning; the old names go in v6)
DEPRECATED_KWARGS = {"gradient_checkpointing": "activation_checkpointing",
                     "gradient_checkpointing_kwargs": "activation_checkpointing_kwargs"}
DEPRECATED_ATTRS = {"is_gradient_checkpointing": "is_activation_checkpointing"}


def _modules():
    for p in sorted(PKG.glob("*.py")):
        if p.name != "_modidx.py": yield p, ast.parse(p.read_text())


def test_no_deprecated_transformers_names_in_our_calls():
    bad = []
    for p, tree in _modules():
        for n in ast.walk(tree):
            if isinstance(n, ast.Call):
                bad += [f"{p.name}:{n.lineno} passes {k.arg}= (use {DEPRECATED_KWARGS[k.arg]}=)" for k in n.keywords if k.arg in DEPRECATED_KWARGS]
            if isinstance(n, ast.Attribute) and n.attr in DEPRECATED_ATTRS:
                bad.append(f"{p.name}:{n.lineno} reads .{n.attr} (use .{DEPRECATED_ATTRS[n.attr]})")
    assert not bad, "deprecated transformers names in our code:\n" + "\n".join(bad)


def test_sub_seeds_come_from_derive_seed():
    "No `seed * 100003 + k` / `seed + 1000*k` arithmetic: sub-stream seeds go through core.derive_seed."
    pat = re.compile(r"seed\s*\*\s*[\d_]{2,}|seed\s*\+\s*[\d_]+\s*\*|\b[\d_]{3,}\s*\*\s*(?:k|i|step)\b")
    bad = [f"{p.name}:{i}: {line.strip()}" for p, _ in _modules()
           for i, line in enumerate(p.read_text().splitlines(), 1) if pat.search(line)]
    assert not bad, "seed arithmetic outside core.derive_seed:\n" + "\n".join(bad)
