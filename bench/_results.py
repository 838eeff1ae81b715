"""Results files of the benchmarks: each bench/*.py writes bench/results/<name>.json (what it measured, with the date,
the machine and the command), and the notebooks show them with `views.bench_table(name)` — so a table in a notebook
is executed output read from a file a benchmark wrote, never numbers typed by hand."""
from __future__ import annotations

import datetime as _dt, json, os, platform, sys, time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent/"results"


def machine() -> dict:
    "What the numbers depend on: CPU model and cores, load average, torch threads and versions."
    cpu = platform.processor() or ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name"))
    except (OSError, StopIteration): pass
    out = {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
           "load_avg": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}
    try:
        import torch, transformers
        out |= {"torch": torch.__version__, "transformers": transformers.__version__, "torch_threads": torch.get_num_threads(),
                "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    except ImportError: pass
    return out


class Timer:
    """Wall-clock and process CPU seconds of a block (`.wall`, `.cpu` after it). On a CPU shared with other jobs the wall
    seconds depend on the load; the CPU seconds are what the work itself cost, so both sides' ratios are reported."""
    def __enter__(self):
        self._t, self._c = time.perf_counter(), time.process_time(); return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self._t, time.process_time() - self._c


def side(name: str, dtype, tokens: int, t: "Timer", **extra) -> dict:
    "One measured side of a benchmark as a results row: tokens, wall and CPU seconds, tokens per wall and per CPU second."
    return {"side": name, "dtype": str(dtype), **extra, "tokens": tokens, "wall s": round(t.wall, 1), "cpu s": round(t.cpu, 1),
            "tok/s": round(tokens / t.wall, 1), "tok/cpu-s": round(tokens / t.cpu, 1)}


def write_results(name: str, rows: list[dict], summary: dict | None = None, notes: str = "", path: Path | None = None) -> Path:
    "Write bench/results/<name>.json atomically: rows (one dict per measured side), summary (ratios), date, machine, command."
    path = Path(path or RESULTS/f"{name}.json"); path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "command": " ".join(["python", f"bench/{name}.py", *sys.argv[1:]]), "machine": machine(),
           "rows": rows, "summary": summary or {}, "notes": notes}
    tmp = path.with_name(path.name + ".tmp"); tmp.write_text(json.dumps(doc, indent=1) + "\n"); os.replace(tmp, path)
    print(f"results: {path}")
    return path
