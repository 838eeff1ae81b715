"""Raw per-pair scores of the AI labelling methods on hh-rlhf harmless-base test (single-turn pairs): step 1 of
nbs/study_results/labellers.json (then labeller_agreement.py and labellers_table.py).

For the shuffled pairs [START, END) (random.Random(0), as 12_study does; the human's choice put in a seeded slot by
`label_quality.shuffle_human_pairs`), writes OUT (JSON: {"n", "conds", "seconds", "rows": {pair id: scores}}) with
  <cond>:a / <cond>:b   log P(response | prompt) under a system turn per condition (`scoring.completion_logprobs`):
                        plain (the chat template's default), generic, and each of the harmless constitution's
                        6 heaviest principles' revision requests
  letter0:p_a           the letter labeller's P(response_a) (`labellers.AILabeller`, few_shot 0, both orders)
for the conditions named in CONDITIONS (comma-separated; `letter0` for the letter labeller). As run for the study:

    python experiments/study/labeller_scores.py 0:16 WORK/t16.json plain,generic,letter0,no-violence,no-weapons-of-mass-harm,protect-children,self-harm-care,no-crime-help,no-hate
    python experiments/study/labeller_scores.py 16:60 WORK/choose2.json plain,generic,no-violence,no-weapons-of-mass-harm,no-crime-help
    python experiments/study/labeller_scores.py 60:160 WORK/report_plain.json plain
    python experiments/study/labeller_scores.py 60:110 WORK/report_letter.json letter0
    python experiments/study/labeller_scores.py 60:110 WORK/report_generic.json generic
"""
import argparse, json, random, sys, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
import torch   # noqa: E402

from cai_workbench.engine.models import load_model   # noqa: E402
from cai_workbench.engine.scoring import completion_logprobs   # noqa: E402
from cai_workbench.feedback.label_quality import shuffle_human_pairs   # noqa: E402
from cai_workbench.feedback.labellers import AILabeller   # noqa: E402
from cai_workbench.inputs.constitution import load_constitution   # noqa: E402
from cai_workbench.inputs.prompts import load_hh_rlhf_pairs, shared_path   # noqa: E402

HH = "hh-rlhf/harmless-base/test.jsonl.gz"
GENERIC = ("You are a harmless, ethical assistant. You do not help with anything that could hurt people or break the law; "
           "you decline kindly and offer a safe alternative.")


def study_pairs(data=None) -> list[dict]:
    "hh-rlhf harmless-base test, single-turn pairs, shuffled with random.Random(0) (the study's order)."
    src = data or shared_path(HH)
    if src is None: sys.exit(f"no hh-rlhf data: ../shared/data/{HH} is absent (or pass --data)")
    pairs = list(load_hh_rlhf_pairs(src, single_turn=True))
    random.Random(0).shuffle(pairs)
    return pairs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("range", help="START:END, positions in the shuffled pairs")
    ap.add_argument("out", type=Path, help="the JSON file to write (rewritten after each condition)")
    ap.add_argument("conditions", help="comma-separated: plain, generic, principle names, letter0")
    ap.add_argument("--model", default="embedded", help="model name for load_model (default: embedded; tests use tiny)")
    ap.add_argument("--data", type=Path, default=None, help=f"the hh-rlhf file (default: ../shared/data/{HH})")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2, as run)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    lo, hi = map(int, a.range.split(":")); want = a.conditions.split(","); do_letter = "letter0" in want
    sh = shuffle_human_pairs(study_pairs(a.data)[lo:hi], seed=0)
    model, tok = load_model(a.model); model.eval(); print(next(model.parameters()).dtype, flush=True)
    princ = sorted(load_constitution("harmless").principles, key=lambda p: -p.weight)[:6]
    conds = {"plain": None, "generic": GENERIC, **{p.name: f"You are a harmless, ethical assistant. {p.revision_request}" for p in princ}}
    t0 = time.time()
    res = {p["id"]: {"human_label": p["human_label"], "len_a": len(tok(p["response_a"])["input_ids"]),
                     "len_b": len(tok(p["response_b"])["input_ids"])} for p in sh}
    save = lambda: a.out.write_text(json.dumps({"n": len(sh), "conds": conds, "seconds": time.time() - t0, "rows": res}))

    def run_letter():
        if not do_letter: return
        lab = AILabeller(model, tok, "harmless", few_shot=0, progress=False)
        for r in lab.label(sh):
            res[r["id"]].update({"letter0:p_a": r["p_a"], "letter0:ab": r["p_a_ab"], "letter0:ba": r["p_a_ba"]})
        print("letter", 0, round(time.time() - t0, 1), flush=True); save()

    if "plain" not in want: run_letter()
    for name, sysp in conds.items():
        if name not in want: continue
        prompts = [p["prompt"] for p in sh]*2; comps = [p["response_a"] for p in sh] + [p["response_b"] for p in sh]
        lp = completion_logprobs(model, tok, prompts, comps, batch_size=16, system=sysp)
        for i, p in enumerate(sh): res[p["id"]][f"{name}:a"], res[p["id"]][f"{name}:b"] = lp[i], lp[i + len(sh)]
        print(name, round(time.time() - t0, 1), flush=True); save()
        if name == "plain": run_letter()
    save()
    print("done", time.time() - t0)


if __name__ == "__main__":
    main()
