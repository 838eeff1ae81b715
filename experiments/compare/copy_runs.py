"""Copies what `sweeps.compare_runs` reads of run folders into nbs/compare_results/<run name>/ (13b_sweeps' comparison):
manifest.json, and evaluation/summary.json when the run has one. As run (then `sh copy.sh`) for the committed copies:

    python experiments/compare/copy_runs.py ../runs/study ../runs/demo-est ../runs/demo-half

Absolute paths inside the copied files are made relative: those inside the run folder to the run folder (e.g. the
evaluation's report), any other to the repository (e.g. the platform's persistent folder); paths SageMaker defines
(/opt/ml/..., /home/ec2-user/SageMaker) are kept."""
import argparse, json, os, re, sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from cai_workbench.launch.sweeps import compare_runs   # noqa: E402   (what reads the copies)

DEST = REPO/"nbs"/"compare_results"
FILES = ("manifest.json", "evaluation/summary.json")
_ABS = re.compile(r"(?<![\w.~])/(?!(?:usr|bin|sbin|lib|etc|proc|sys|dev|opt/ml)/|home/ec2-user/SageMaker\b)[\w.+-]+(?:/[\w.+-]+)+")


def relative_paths(text: str, run: Path, repo: Path = REPO) -> str:
    "JSON text with its absolute paths made relative to `run` (paths inside it) or to `repo` (any other); else unchanged."
    run = run.resolve()
    def one(m):
        p = Path(m.group(0))
        return os.path.relpath(p, run) if p == run or run in p.parents else os.path.relpath(p, repo)
    out = _ABS.sub(one, text)
    json.loads(out)   # still JSON
    return out


def copy_run(run: Path, dest: Path = DEST) -> list[Path]:
    "Copy one run folder's manifest (and evaluation summary) to dest/<run name>/; returns the files written."
    out = []
    for rel in FILES:
        src = run/rel
        if not src.exists():
            if rel == "manifest.json": raise SystemExit(f"error: {run} has no manifest.json: not a run folder")
            continue
        to = dest/run.resolve().name/rel; to.parent.mkdir(parents=True, exist_ok=True)
        to.write_text(relative_paths(src.read_text(), run))
        out.append(to)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run folders")
    ap.add_argument("--dest", type=Path, default=DEST, help=f"default: {DEST.relative_to(REPO)}")
    a = ap.parse_args(argv)
    for r in a.runs:
        for f in copy_run(r, a.dest): print(f"wrote {f}")
    cmp = compare_runs([a.dest/r.resolve().name for r in a.runs])   # what 13b_sweeps reads of the copies
    print(f"{len(cmp.rows)} row(s) for compare_runs; config keys that differ: {cmp.keys}")


if __name__ == "__main__":
    main()
