"Run files honour the umask (issue 32 item 9): a team's shared folder (EFS, a SageMaker shared space) can read them."
import os, stat
from pathlib import Path

import pytest

from cai_workbench.core.io import atomic_dir, atomic_write_text, save_figure, write_json
from cai_workbench.pipeline import load_config, run_pipeline


def _modes(root: Path) -> dict:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")] if not p.is_symlink()}



@pytest.mark.parametrize("umask", [0o002, 0o022])
def test_atomic_writes_honour_the_umask(tmp_path, umask):
    from matplotlib.figure import Figure
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path/"a.txt", "x"); write_json(tmp_path/"b.json", {})
        with atomic_dir(tmp_path/"d") as d: (d/"f.bin").write_bytes(b"1")
        fig = Figure(); fig.subplots().plot([0, 1]); save_figure(fig, tmp_path/"p.png")
    finally: os.umask(old)
    m = _modes(tmp_path)
    assert m["a.txt"] == m["b.json"] == m["p.png"] == m["d/f.bin"] == 0o666 & ~umask, {k: oct(v) for k, v in m.items()}
    assert m["d"] == 0o777 & ~umask


@pytest.mark.parametrize("umask", [0o002, 0o022])
def test_a_tiny_run_writes_files_and_folders_under_the_umask(tmp_path, umask):
    cfg, where = load_config("tiny")
    cfg = type(cfg).from_dict({**cfg.to_dict(), "stages": ["critique_revision", "sft"]})
    old = os.umask(umask)
    try: run_pipeline(cfg, run_dir=tmp_path/"run", where=where, progress=False)
    finally: os.umask(old)
    modes = _modes(tmp_path/"run")
    assert "sft/adapter/adapter_model.safetensors" in modes and "manifest.json" in modes and ".lock" in modes
    bad = {k: oct(v) for k, v in modes.items()
           if v != ((0o777 if (tmp_path/"run"/k).is_dir() else 0o666) & ~umask)}
    assert not bad, f"umask {oct(umask)}: {bad}"
