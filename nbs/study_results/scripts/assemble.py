import json, sys, subprocess
sys.path.insert(0, "/tmp/study")
import analyse2 as A
ch = A.score(A.load(["/tmp/study/t16.json", "/tmp/study/choose2.json"], 0, 60))
rep_rows = A.load(["/tmp/study/report_plain.json", "/tmp/study/report_letter.json", "/tmp/study/report_generic.json"], 60, 160)
rep = A.score(rep_rows)
# selection rule: highest ties-half agreement on choose among methods measured on every report pair
eligible = [m for m in ch if m in rep and rep[m]["n"] >= 50 and "baseline" not in m]
best = max(eligible, key=lambda m: ch[m]["agreement_ties_half"])
choose_ids = [p["id"] for p, _ in A.load(["/tmp/study/t16.json", "/tmp/study/choose2.json"], 0, 60)]
report_ids = [p["id"] for p, _ in rep_rows]
import os
secs = sum(json.load(open(f))["seconds"] for f in ["/tmp/study/report_plain.json", "/tmp/study/report_letter.json", "/tmp/study/report_generic.json"] if os.path.exists(f)) + json.load(open("/tmp/study/choose2.json"))["seconds"] + json.load(open("/tmp/study/t16.json"))["seconds"]
conds = json.load(open("/tmp/study/t16.json"))["conds"]
meta = {"model": "embedded SmolLM2-135M-Instruct, bfloat16, CPU", "machine": sys.argv[1], "load average": sys.argv[2],
        "data": "hh-rlhf harmless-base/test.jsonl.gz, single-turn pairs (load_hh_rlhf_pairs(single_turn=True)), shuffled with random.Random(0)",
        "choose split": f"shuffled pairs 0-59 (n={len(choose_ids)}; letter labeller measured on pairs 0-15 only)",
        "report split": f"shuffled pairs 60-159 (n={len(report_ids)}); each method's n is in its row (letter and likelihood-ratio measured on pairs 60-109 only)",
        "letter labeller": "preferences.AILabeller defaults: constitution harmless, few_shot 0, both orders, seed 0",
        "likelihood-ratio conditions": "system turn labellers.CONDITION with GENERIC or the principle's revision_request; plain = chat template default system",
        "scoring batch": "scoring.completion_logprobs, batch 16",
        "wall time": f"{secs/60:.0f} min for all three files (niced, shared CPU)",
        "script": "raw per-pair log-probs by a measurement script over labellers' conditions; agreement computed as in label_quality"}
for d in (ch, rep):
    for m in d: pass
json.dump({"meta": meta, "choose": ch, "report": rep, "choose_ids": choose_ids, "report_ids": report_ids,
           "chosen": {"method": best, "why": f"highest agreement (ties 1/2) on the choose split among {eligible}: {ch[best]['agreement_ties_half']}"},
           "default_changed": False}, open("/work/wt-study/nbs/study_results/labellers.json", "w"), indent=1)
print(best)
