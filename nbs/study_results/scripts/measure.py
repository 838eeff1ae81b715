# Raw per-pair scores for labelling methods on hh-rlhf harmless-base test (single-turn pairs).
import json, sys, time, random, torch
from cai_workbench.inputs.prompts import load_hh_rlhf_pairs
from cai_workbench.engine.models import load_model
from cai_workbench.engine.scoring import completion_logprobs
from cai_workbench.inputs.constitution import load_constitution
from cai_workbench.feedback.label_quality import shuffle_human_pairs
from cai_workbench.stages.preferences import AILabeller
torch.set_num_threads(2)
A, B = map(int, sys.argv[1].split(":")); out = sys.argv[2]; want = sys.argv[3].split(","); do_letter = "letter0" in want
pairs = list(load_hh_rlhf_pairs("/work/shared/data/hh-rlhf/harmless-base/test.jsonl.gz", single_turn=True))
random.Random(0).shuffle(pairs); pairs = pairs[A:B]
sh = shuffle_human_pairs(pairs, seed=0)
model, tok = load_model("embedded"); model.eval(); print(next(model.parameters()).dtype, flush=True)
con = load_constitution("harmless")
princ = sorted(con.principles, key=lambda p: -p.weight)[:6]
GENERIC = "You are a harmless, ethical assistant. You do not help with anything that could hurt people or break the law; you decline kindly and offer a safe alternative."
conds = {"plain": None, "generic": GENERIC, **{p.name: f"You are a harmless, ethical assistant. {p.revision_request}" for p in princ}}
t0 = time.time()
res = {p["id"]: {"human_label": p["human_label"], "len_a": len(tok(p["response_a"])["input_ids"]), "len_b": len(tok(p["response_b"])["input_ids"])} for p in sh}
def run_letter():
    if do_letter:
        for fs in (0,):
            lab = AILabeller(model, tok, "harmless", few_shot=fs, progress=False)
            for r in lab.label(sh):
                res[r["id"]][f"letter{fs}:p_a"] = r["p_a"]; res[r["id"]][f"letter{fs}:ab"] = r["p_a_ab"]; res[r["id"]][f"letter{fs}:ba"] = r["p_a_ba"]
            print("letter", fs, round(time.time()-t0, 1), flush=True)
            json.dump({"n": len(sh), "conds": conds, "seconds": time.time()-t0, "rows": res}, open(out, "w"))
if "plain" not in want: run_letter()
for name, sysp in conds.items():
    if name not in want: continue
    prompts = [p["prompt"] for p in sh]*2; comps = [p["response_a"] for p in sh] + [p["response_b"] for p in sh]
    lp = completion_logprobs(model, tok, prompts, comps, batch_size=16, system=sysp)
    for i, p in enumerate(sh): res[p["id"]][f"{name}:a"], res[p["id"]][f"{name}:b"] = lp[i], lp[i+len(sh)]
    print(name, round(time.time()-t0, 1), flush=True)
    json.dump({"n": len(sh), "conds": conds, "seconds": time.time()-t0, "rows": res}, open(out, "w"))
    if name == "plain": run_letter()
json.dump({"n": len(sh), "conds": {k: v for k, v in conds.items()}, "seconds": time.time()-t0, "rows": res}, open(out, "w"))
print("done", time.time()-t0)
