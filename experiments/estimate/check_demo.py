"""Predicted vs actual wall time per stage (issue 16 §3): each run's stages predicted from the OTHER runs, compared with
its manifest. Writes nbs/estimate_results/check.json (13a_estimate's check on the demo preset). As run:

  python experiments/estimate/check_demo.py --runs ../runs/longrun-small ../runs/longrun-medium ../runs/longrun-demo \
      --trace LOAD_TRACE --note "..."          # small and medium: the configs in nbs/estimate_results/*.yaml

For every run R (leave one out) and stage, two predictions from figures measured on the other runs only:
  fit  `estimate.fit_rates` over the other runs: wall = fixed + per-token x tokens (least squares; >= 2 sizes)
  one  the largest other run's seconds per token alone (what a single reference run gives: no fixed cost)
Wall times are as measured (no load rescaling); the load averages (and CPU seconds) are recorded beside them.
A trace is `<unix time> <1-min load> ...` lines or `uptime` output lines (today's date, UTC), sampled during the runs.
Run folders are recorded relative to the repository."""
import argparse, os, re, sys, time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from cai_workbench.core.io import write_json   # noqa: E402
from cai_workbench.launch.estimate import fit_rates, stage_points   # noqa: E402


OUT = REPO/"nbs"/"estimate_results"/"check.json"


def rel(path) -> str:
    "A run folder as recorded in results: relative to the repository."
    return os.path.relpath(Path(path).resolve(), REPO)


def read_trace(paths, day: str) -> list[tuple[float, float]]:
    out = []
    for p in paths:
        for line in Path(p).read_text().splitlines():
            if m := re.match(r"\s*(\d\d:\d\d:\d\d) up .*load average: ([\d.]+)", line):
                out.append((datetime.fromisoformat(f"{day}T{m.group(1)}+00:00").timestamp(), float(m.group(2))))
            elif m := re.match(r"(\d{9,})\s+([\d.]+)", line): out.append((float(m.group(1)), float(m.group(2))))
    return sorted(out)


def _pred(row, key, s):
    row[f"{key}_s"] = round(s, 1); row[f"{key}_ratio"] = round(row["actual_s"]/s, 3); row[f"{key}_within_30"] = abs(row["actual_s"]/s - 1) <= 0.3


def check(runs, trace):
    pts = {r: stage_points(r, trace) for r in runs}
    rows, fits = [], {}
    for r in runs:
        others = [o for o in runs if o != r]
        fit = fit_rates(others, trace); fits[Path(r).name] = fit
        largest = max(others, key=lambda o: sum(p["tokens"] for p in pts[o].values()))
        for stage, p in pts[r].items():
            row = {"run": Path(r).name, "stage": stage, "tokens": p["tokens"], "what": p["what"], "actual_s": p["wall_s"],
                   "cpu_s": p["cpu_s"], "load": p["load"], "fit_on": [Path(o).name for o in others]}
            if stage in fit:
                f = fit[stage]; row.update(fixed_s=round(f["fixed_s"], 2), s_per_token=f["s_per_token"])
                _pred(row, "fit", f["fixed_s"] + p["tokens"]*f["s_per_token"])
            if stage in pts[largest]:
                q = pts[largest][stage]; row["one_from"] = Path(largest).name; _pred(row, "one", p["tokens"]*q["wall_s"]/q["tokens"])
            rows.append(row)
    return rows, fits


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True, help="3 or more finished run folders")
    ap.add_argument("--trace", nargs="*", default=[]); ap.add_argument("--day", default=time.strftime("%Y-%m-%d", time.gmtime()))
    ap.add_argument("--note", default="", help="how the runs were made (machine, priority, code snapshot)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT.relative_to(REPO)}")
    a = ap.parse_args(argv)
    if len(a.runs) < 3: ap.error("--runs: give at least 3 runs (each is predicted from a fit on the other two or more)")
    trace = read_trace(a.trace, a.day)
    rows, fits = check(a.runs, trace)

    def relative(text: str) -> str:   # a fit's source names the runs it was fitted on
        for r in sorted(a.runs, key=len, reverse=True): text = text.replace(r, rel(r))
        return text

    write_json(a.out, {"runs": [rel(r) for r in a.runs], "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "note": a.note,
                       "fits": {k: {s: {"fixed_s": f["fixed_s"], "s_per_token": f["s_per_token"], "source": relative(f["source"])} for s, f in v.items()}
                                for k, v in fits.items()},
                       "rows": rows})
    for r in rows: print({k: v for k, v in r.items() if k not in ("what", "fit_on")})


if __name__ == "__main__":
    main()
