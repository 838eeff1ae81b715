"""The revision gate on the embedded model, measured: which revisions it keeps, how sure the feedback model is, and
whether the kept ones score better than the answers they replace. Writes nbs/critique_results/gate.json (with the
date, the machine, the load and the command), which 03_critique_revision shows. As run (`nbs/critique_results/gate.py`
then, with --run-dir ../runs/docs-gate):

    .venv/bin/python experiments/critique_gate/gate.py [--prompts 16] [--max-new-tokens 64] [--run-dir DIR]

One round of critique → revision on the first N demo prompts with `gate=True, gate_margin=0.05`; the embedded model
is policy and feedback model. For every revision the gate scored: P(revision better) (both orders averaged, and each
order), whether margin 0.05 keeps it, whether margin 0 would, and whether the heuristic principle judge
(`judges.evaluate_principles`, weighted score) scores the revision above the original answer.
"""
import argparse, datetime as dt, json, os, platform, sys, tempfile, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from cai_workbench.core.environment import detect_device   # noqa: E402
from cai_workbench.core.run import Run   # noqa: E402
from cai_workbench.engine.generator import GenerationConfig   # noqa: E402
from cai_workbench.judges.rules import evaluate_principles   # noqa: E402
from cai_workbench.stages.critique_revision import CritiqueRevisionConfig, run_critique_revision   # noqa: E402

from experiments._common import recorded_command   # noqa: E402

OUT = REPO/"nbs"/"critique_results"/"gate.json"



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("--run-dir", default=None, help="default: a temporary folder")
    ap.add_argument("--model", default="embedded", help="policy and feedback model (default: embedded; the smoke test uses tiny)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT.relative_to(REPO)}")
    a = ap.parse_args(argv)
    cfg = CritiqueRevisionConfig(prompts="demo", limit=a.prompts, rounds=1, gate=True, gate_margin=a.margin,
                                 generation=GenerationConfig(max_new_tokens=a.max_new_tokens))
    load0, t0, c0 = os.getloadavg()[0], time.time(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        res = run_critique_revision(Run.create(Path(a.run_dir or Path(tmp)/"gate"), seed=0), cfg, model=a.model, progress=False)
        rows = []
        for r in res.records:
            g = r["rounds"][0].get("gate") if r["rounds"] else None
            if g is None: continue                                     # converged or no revision: the gate did not score it
            rev, prev, lab = r["rounds"][0]["revision"], r["initial_response"], r.get("label")
            rows.append({"id": r["id"], "p_revision": g["p_revision"], "p_ab": g["p_revision_ab"], "p_ba": g["p_revision_ba"],
                         "kept": g["accepted"], "kept_at_margin_0": g["p_revision"] >= 0.5,
                         "heuristic_better": evaluate_principles(r["prompt"], rev, lab)["weighted_score"]
                                             > evaluate_principles(r["prompt"], prev, lab)["weighted_score"]})
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    dev = detect_device("cpu")   # the dtype the embedded model infers in on this CPU
    doc = {"what": "revision gate on the embedded model", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "command": recorded_command(__file__, sys.argv[1:] if argv is None else argv, ("--run-dir", "--out")),
           "machine": {"cpu": cpu, "cores": os.cpu_count(), "dtype": dev.infer_dtype, "load_avg_start": round(load0, 2),
                       "load_avg_end": round(os.getloadavg()[0], 2)},
           "config": {"prompts": "demo", "limit": a.prompts, "rounds": 1, "gate_margin": a.margin, "max_new_tokens": a.max_new_tokens,
                      "policy": a.model, "feedback_model": a.model},
           "n_prompts": len(res.records), "wall_s": round(time.time() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
           "rows": rows}
    out = a.out; tmpf = out.with_suffix(".json.tmp")
    tmpf.write_text(json.dumps(doc, indent=1) + "\n"); os.replace(tmpf, out)
    print(f"{len(rows)} revisions scored by the gate, {sum(r['kept'] for r in rows)} kept; wrote {out}")


if __name__ == "__main__":
    main()
