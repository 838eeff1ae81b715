"""Predicted vs actual wall time per stage (issue 16 §3): predict finished runs with `estimate` and compare with their manifests.

  python scripts/estimate_check.py --fit RUN [--check RUN ...] [--trace FILE ...] --out nbs/estimate_results/check.json

Three predictions per stage, each from figures measured before or apart from the run predicted:
  benchmark  the package's data/throughput.json (for the fit run: what `estimate` says with no reference)
  as-is      the fit run's seconds per token, at the load it met (for the check runs)
  load       the fit run's seconds per token alone, times max(1, L/cores) at the check stage's mean load L
A trace is `<unix time> <1-min load> ...` lines or `uptime` output lines (today's date, UTC), sampled during the runs."""
import argparse, json, re, sys, time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cai_workbench.core import read_json, write_json                           # noqa: E402
from cai_workbench.estimate import contention, rates_from_run, section_config, stage_load, stage_work, throughput_table   # noqa: E402
from cai_workbench.pipeline import PipelineConfig                               # noqa: E402


def read_trace(paths, day: str) -> list[tuple[float, float]]:
    out = []
    for p in paths:
        for line in Path(p).read_text().splitlines():
            if m := re.match(r"\s*(\d\d:\d\d:\d\d) up .*load average: ([\d.]+)", line):
                out.append((datetime.fromisoformat(f"{day}T{m.group(1)}+00:00").timestamp(), float(m.group(2))))
            elif m := re.match(r"(\d{9,})\s+([\d.]+)", line): out.append((float(m.group(1)), float(m.group(2))))
    return sorted(out)


def rows_for(run, trace, rates=None, bench=None):
    m = read_json(Path(run)/"manifest.json"); cfg = PipelineConfig.from_dict(m["config"], where=str(run))
    rows = []
    for stage in cfg.stages:
        info = m["stages"].get(stage, {})
        if info.get("status") != "done" or info.get("reused_from"): continue
        done = [s for s, i in m["stages"].items() if i.get("status") == "done"]
        w = stage_work(stage, section_config(cfg, stage), cfg.seed, done); L = stage_load(info, trace)
        row = {"run": Path(run).name, "stage": stage, "tokens": w["tokens"], "what": w["what"], "actual_s": info["wall_s"], "load": L}
        if bench is not None and stage in bench: row["benchmark_s"] = round(w["tokens"]*bench[stage]["s_per_token"], 1)
        if rates and stage in rates:
            r = rates[stage]; row["asis_s"] = round(w["tokens"]*r["s_per_token"], 1)
            if r["s_per_token_alone"] is not None and L is not None: row["load_s"] = round(w["tokens"]*r["s_per_token_alone"]*contention(L, r["cores"]), 1)
        for k in ("benchmark_s", "asis_s", "load_s"):
            if k in row: row[k.replace("_s", "_ratio")] = round(row["actual_s"]/row[k], 3); row[k.replace("_s", "_within_30")] = abs(row["actual_s"]/row[k] - 1) <= 0.3
        rows.append(row)
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(); ap.add_argument("--fit", required=True); ap.add_argument("--check", nargs="*", default=[])
    ap.add_argument("--trace", nargs="*", default=[]); ap.add_argument("--day", default=time.strftime("%Y-%m-%d", time.gmtime()))
    ap.add_argument("--bench", help="a throughput table to take the benchmark column from (default: the package's)")
    ap.add_argument("--out", required=True); a = ap.parse_args()
    trace = read_trace(a.trace, a.day)
    table = read_json(a.bench) if a.bench else throughput_table()
    bench = table["classes"]["cpu"]
    rates = rates_from_run(a.fit, trace)
    res = {"fit": a.fit, "check": a.check, "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "benchmark_table": a.bench or "cai_workbench/data/throughput.json", "fit_rates": rates,
           "rows": rows_for(a.fit, trace, bench=bench) + [r for c in a.check for r in rows_for(c, trace, rates=rates)]}
    write_json(a.out, res)
    for r in res["rows"]: print({k: v for k, v in r.items() if k != "what"})
