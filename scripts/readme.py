"""Write README.md from nbs/index.ipynb (markdown cells as they are, code cells fenced).

nbdev's own `nbdev-readme` renders through Quarto, which is a separate binary download that offline machines
cannot fetch; the index notebook is plain markdown, so this is all it takes."""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
nb = json.loads((root/"nbs"/"index.ipynb").read_text())
parts = []
for c in nb["cells"]:
    src = "".join(c["source"]).strip()
    if not src or src.startswith("#| hide"): continue
    parts.append(src if c["cell_type"] == "markdown" else f"```python\n{src}\n```")
out = "<!-- generated from nbs/index.ipynb by scripts/readme.py: edit the notebook, not this file -->\n\n" + "\n\n".join(parts) + "\n"
(root/"README.md").write_text(out)
print(f"wrote {root/'README.md'} ({len(out)} chars)")
