"""Writes nbs/study_results/labellers.json (12_study's labelling-method table, 04d_labellers' numbers) from
labeller_scores.py's files: step 3, after labeller_agreement.py. As run for the study:

    python experiments/study/labellers_table.py "AMD EPYC, 2 cores" "15-26 (shared by ~9 agents)" --work WORK

Selection rule (fixed before the report split was scored): the highest agreement (ties counted 1/2) on the choose split
among the methods measured on every report pair (n >= 50), baselines excluded. Nothing here re-measures."""
import argparse, json, sys
from pathlib import Path

HERE, REPO = Path(__file__).resolve().parent, Path(__file__).resolve().parents[2]
sys.path.insert(0, str(HERE))
import labeller_agreement as A   # noqa: E402

OUT = REPO/"nbs"/"study_results"/"labellers.json"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("machine", help="the machine the scores were measured on (recorded as meta.machine)")
    ap.add_argument("load", help="the load averages seen (recorded as meta['load average'])")
    ap.add_argument("--work", type=Path, required=True, help="the folder labeller_scores.py wrote its files to")
    ap.add_argument("--data", type=Path, default=None, help=f"the hh-rlhf file (default: ../shared/data/{A.HH})")
    ap.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT.relative_to(REPO)}")
    a = ap.parse_args(argv)
    choose_files, report_files = A.split_files(a.work, "choose"), A.split_files(a.work, "report")
    choose_rows = A.load(choose_files, *A.SPLITS["choose"][1:], a.data)
    rep_rows = A.load(report_files, *A.SPLITS["report"][1:], a.data)
    ch, rep = A.score(choose_rows), A.score(rep_rows)
    eligible = [m for m in ch if m in rep and rep[m]["n"] >= 50 and "baseline" not in m]
    best = max(eligible, key=lambda m: ch[m]["agreement_ties_half"])
    choose_ids, report_ids = [p["id"] for p, _ in choose_rows], [p["id"] for p, _ in rep_rows]
    secs = sum(json.loads(f.read_text())["seconds"] for f in [*report_files, *choose_files] if f.exists())
    meta = {"model": "embedded SmolLM2-135M-Instruct, bfloat16, CPU", "machine": a.machine, "load average": a.load,
            "data": "hh-rlhf harmless-base/test.jsonl.gz, single-turn pairs (load_hh_rlhf_pairs(single_turn=True)), shuffled with random.Random(0)",
            "choose split": f"shuffled pairs 0-59 (n={len(choose_ids)}; letter labeller measured on pairs 0-15 only)",
            "report split": f"shuffled pairs 60-159 (n={len(report_ids)}); each method's n is in its row (letter and likelihood-ratio measured on pairs 60-109 only)",
            "letter labeller": "preferences.AILabeller defaults: constitution harmless, few_shot 0, both orders, seed 0",
            "likelihood-ratio conditions": "system turn labellers.CONDITION with GENERIC or the principle's revision_request; plain = chat template default system",
            "scoring batch": "scoring.completion_logprobs, batch 16",
            "wall time": f"{secs/60:.0f} min for all three files (niced, shared CPU)",
            "script": "raw per-pair log-probs by a measurement script over labellers' conditions; agreement computed as in label_quality"}
    a.out.write_text(json.dumps({"meta": meta, "choose": ch, "report": rep, "choose_ids": choose_ids, "report_ids": report_ids,
                                 "chosen": {"method": best, "why": f"highest agreement (ties 1/2) on the choose split among {eligible}: {ch[best]['agreement_ties_half']}"},
                                 "default_changed": False}, indent=1))
    print(best)


if __name__ == "__main__":
    main()
