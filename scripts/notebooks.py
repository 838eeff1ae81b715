"""Re-execute the notebooks in nbs/ in place, so that each is committed with its outputs (`make notebooks`).

    .venv/bin/python scripts/notebooks.py                       # every notebook in nbs/, in parallel
    .venv/bin/python scripts/notebooks.py nbs/00_core.ipynb -j 1 # some notebooks
    .venv/bin/python scripts/notebooks.py --no-slow               # skip the `#| slow` cells (embedded model)

Each notebook runs in its own Jupyter kernel (nbclient), from nbs/ as working directory, on the CPU, offline
(HF_*_OFFLINE=1), with the repository first on PYTHONPATH, matplotlib's inline backend and progress bars off.
Cells flagged `#| slow` run (they are the ones that load the embedded model); cells flagged `#| eval: false`,
`#| cuda` or `#| notest` do not (no GPU here; nbdev-test skips them too) and keep no output.
A notebook gets `--timeout` seconds in all (its kernel is killed past that) and `--cell-timeout` per cell.
A notebook that fails or times out is left as it was (nothing half-written); the run goes on with the others
and exits 1 at the end, naming each failure and the cell it stopped in.

Outputs are scrubbed of what changes from run to run, so a rerun gives a small, reviewable diff: the repository's
absolute path, the home folder and temporary folders, memory addresses (`0x7f...`), ISO timestamps, durations
(`12.3 s`, `train_runtime`, `it/s`), ANSI colour codes and progress-bar redraws (`\\r`); a live widget's output (its model id changes every run and no widget state is
saved) becomes a one-line note, the static `views.snapshot` beside it showing the view. Then `nbdev-clean` runs
on the written notebooks (it keeps outputs: `clear_all = false` in pyproject.toml) and the time per notebook is
printed and written to test-artifacts/notebooks-timing.json.
"""
from __future__ import annotations

import argparse, json, os, re, signal, site, subprocess, sys, sysconfig, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
SKIP = {"eval: false", "cuda", "notest"}


def cell_flags(cell) -> set[str]:
    "nbdev directives on a code cell's first lines, normalised: {'slow', 'eval: false', 'export', ...}."
    out = set()
    for line in "".join(cell.get("source", "")).splitlines():
        m = re.match(r"\s*#\|\s*(.+?)\s*$", line)
        if not m: break
        d = re.sub(r"\s*:\s*", ": ", m.group(1).strip().lower())
        out |= {d, d.split()[0]}
    return out


# -- scrubbing volatile output ------------------------------------------------------------------------------------
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_ADDR = re.compile(r"\b0x[0-9a-fA-F]{6,16}\b")
_ISO = re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_DUR = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(\s?)(ms|s|sec|secs|seconds|it/s|s/it|samples/s|tok/s|tokens/s)\b")
_DUR_KEYS = re.compile(r"""(['"]?\w*(?:runtime|per_second|_seconds|elapsed|duration)\w*['"]?\s*[:=]\s*)-?\d+(?:\.\d+)?(?:e-?\d+)?""")


def _redraws(s: str) -> str:
    "Keep what a terminal would show of each line: the text after its last carriage return."
    return "\n".join(line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r") for line in s.split("\n"))


# where this interpreter's packages live (a warning's file name shows it), longest first
_SITE = sorted({p for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()) if p},
               key=len, reverse=True)

_DATA_URI = re.compile(r"(data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+)")

def scrub(s: str, root: Path = ROOT) -> str:
    "Text with this machine's and this run's particulars replaced by stable placeholders; embedded `data:` URIs (an image in a repr) kept whole."
    if "base64," in s:
        parts = _DATA_URI.split(s)   # odd indices: the URIs
        return "".join(x if i % 2 else _scrub(x, root) for i, x in enumerate(parts))
    return _scrub(s, root)

def _scrub(s: str, root: Path = ROOT) -> str:
    s = _redraws(_ANSI.sub("", s))
    for sp in _SITE: s = s.replace(sp, "<site-packages>")
    tmp = re.escape(os.path.realpath(tempfile.gettempdir()))
    for base in {str(root.parent/"shared"), os.path.realpath(root.parent/"shared")}:   # the reference data beside the checkout
        s = s.replace(base, "../shared")
    for base in {str(root), os.path.realpath(root)}:
        s = s.replace(base + os.sep, "").replace(base, ".")
    s = re.sub(rf"(?:{tmp}|{re.escape(tempfile.gettempdir())})/[^\s'\"<>)\],]+", "<tmp>", s)
    s = s.replace(str(Path.home()), "~")
    s = _ADDR.sub("0x…", s)
    s = _ISO.sub("<timestamp>", s)
    s = _DUR_KEYS.sub(r"\1…", s)
    return _DUR.sub(r"…\1\2", s)


WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "[live ipywidgets view: it appears when the notebook runs in a kernel]"
_TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/javascript")


def scrub_outputs(cell) -> None:
    "Scrub a code cell's outputs in place; drop empty streams and per-output metadata that holds timings."
    outs = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            o["text"] = scrub("".join(o["text"]))
            if not o["text"].strip(): continue
        elif o.get("output_type") in ("display_data", "execute_result"):
            if WIDGET in o.get("data", {}):  # no widget state is saved (its model id changes every run): say what it is
                o["data"] = {"text/plain": WIDGET_NOTE}
            for k in _TEXT_MIMES:
                if k in o.get("data", {}):
                    v = o["data"][k]
                    o["data"][k] = scrub("".join(v) if isinstance(v, list) else v)
        elif o.get("output_type") == "error":
            o["traceback"] = [scrub(t) for t in o.get("traceback", [])]
        outs.append(o)
    cell["outputs"] = outs


# -- executing one notebook (in a child process) ------------------------------------------------------------------
def kernel_env(threads: int) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", TQDM_DISABLE="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
               HF_DATASETS_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_NO_ADVISORY_WARNINGS="1", PYTHONHASHSEED="0",
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), CUDA_VISIBLE_DEVICES="",
               PYDEVD_DISABLE_FILE_VALIDATION="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.pop("MPLBACKEND", None)  # the kernel's inline backend, so figures become outputs
    return env


def execute_one(path: Path, cell_timeout: int, slow: bool) -> None:
    "Run `path` in a fresh kernel and write it back with scrubbed outputs (only if every cell ran)."
    import nbformat
    from nbclient import NotebookClient

    class Client(NotebookClient):
        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            f = cell_flags(cell) if cell.cell_type == "code" else set()
            if f & SKIP or ("slow" in f and not slow):
                cell.outputs, cell.execution_count = [], None
                return cell
            print(f"  {path.stem}: cell {cell_index}", file=sys.stderr, flush=True)
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    nb = nbformat.read(path, as_version=4)
    Client(nb, timeout=cell_timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
           record_timing=False, store_widget_state=False).execute()
    for c in nb.cells:
        if c.cell_type == "code": scrub_outputs(c)
    tmp = path.with_name(f".{path.name}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)


def run_one(path: Path, a, threads: int) -> dict:
    "Execute one notebook in a child process with a wall-clock limit; returns {'notebook', 'ok', 'seconds', 'error'}."
    cmd = [sys.executable, __file__, "--one", str(path), "--cell-timeout", str(a.cell_timeout)] + ([] if a.slow else ["--no-slow"])
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=kernel_env(threads), cwd=path.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=a.timeout)
        ok, error = p.returncode == 0, "" if p.returncode == 0 else (err.strip().splitlines() or ["failed"])
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL); out, err = p.communicate()
        ok, error = False, [f"timed out after {a.timeout} s"]
    if not ok:  # the last progress line names the cell it stopped in
        where = [l for l in err.splitlines() if l.strip().startswith(f"{path.stem}: cell")]
        error = (where[-1].strip() + ": " if where else "") + " | ".join(error[-6:])
    r = {"notebook": path.name, "ok": ok, "seconds": round(time.monotonic() - t0, 1), "error": error or None}
    print(f"{'ok  ' if ok else 'FAIL'} {path.name:<28} {r['seconds']:7.1f} s" + ("" if ok else f"\n     {error}"), flush=True)
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every nbs/*.ipynb")
    ap.add_argument("-j", "--jobs", type=int, default=max(1, (os.cpu_count() or 2)//2), help="notebooks at once (default: half the cores)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per notebook, all cells together (default 900)")
    ap.add_argument("--cell-timeout", type=int, default=600, help="seconds per cell (default 600)")
    ap.add_argument("--no-slow", dest="slow", action="store_false", help="do not run cells flagged `#| slow`")
    ap.add_argument("--no-clean", dest="clean", action="store_false", help="do not run nbdev-clean afterwards")
    ap.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        execute_one(a.one.resolve(), a.cell_timeout, a.slow); return 0
    paths = [p.resolve() for p in a.notebooks] or sorted(NBS.glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.exists() or p.suffix != ".ipynb"]
    if missing: ap.error(f"not a notebook: {', '.join(missing)}")
    threads = max(1, (os.cpu_count() or 2)//max(1, a.jobs))
    print(f"== executing {len(paths)} notebooks, {a.jobs} at a time, {threads} torch thread(s) each, "
          f"{'with' if a.slow else 'without'} slow cells, {a.timeout} s per notebook", flush=True)
    t0 = time.monotonic()
    # heaviest first (largest file ~ most cells) so the long ones do not start last
    order = sorted(paths, key=lambda p: -p.stat().st_size)
    with ThreadPoolExecutor(a.jobs) as ex: results = list(ex.map(lambda p: run_one(p, a, threads), order))
    ok = {r["notebook"] for r in results if r["ok"]}
    if a.clean and ok:
        nbclean = Path(sys.executable).with_name("nbdev-clean")
        for p in paths:
            if p.name in ok: subprocess.run([str(nbclean), "--fname", str(p)], cwd=ROOT, check=True)
    art = ROOT/"test-artifacts"; art.mkdir(exist_ok=True)
    (art/"notebooks-timing.json").write_text(json.dumps({"jobs": a.jobs, "threads": threads, "slow": a.slow,
        "wall_s": round(time.monotonic() - t0, 1), "load_avg": os.getloadavg()[0], "notebooks": results}, indent=1))
    bad = [r for r in results if not r["ok"]]
    print(f"== {len(results) - len(bad)} of {len(results)} notebooks executed in {time.monotonic() - t0:.0f} s wall"
          + (f"; FAILED: {', '.join(r['notebook'] for r in bad)}" if bad else ""), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
