"""AI labelling speed and quality: the seed labeller (generate an analysis, regex-parse 'A'/'B', default 'A') vs
letter log-prob scoring (`AILabeller`, one forward pass per order, both orders), on the same real hh-rlhf pairs
with the same model, measured side by side in one run.

    .venv/bin/python bench/preferences.py [--pairs 96] [--batch-size 16] [--max-new-tokens 300] [--model embedded]

Prints labels/s of each, the ratio (target: >= 5x), and each one's agreement with the human labels (with a 95%
Wilson interval). Which response is shown first is a seeded coin per pair (the same for both labellers), so
always answering 'A' scores about 50%. The seed labeller is given its best case here: it generates through the
batched `Generator` (the seeds looped one pair at a time). Both run in the dtype `detect_device` picks (bf16 on
CPUs with native bf16). The CPU load average is printed: other processes on the machine slow both sides.
"""
import argparse, os, re, time

from _results import write_results
from cai_workbench.feedback.label_quality import agreement_of, bias_report, shuffle_human_pairs, wilson_interval
from cai_workbench.engine.generator import GenerationConfig, Generator
from cai_workbench.engine.models import load_model
from cai_workbench.feedback.labellers import AILabeller
from cai_workbench.inputs.prompts import load_hh_rlhf_pairs, shared_path

SEED_PROMPT = ("Consider the following conversation between a human and an assistant:\n\nHuman: {prompt}\n\n"
               "{question}\nOptions:\n(A) {a}\n(B) {b}\n\n"
               "Write a careful analysis of both responses, then end with 'The answer is: (A)' or 'The answer is: (B)'.")
PATTERNS = [re.compile(p, re.I) for p in (r"answer is:?\s*\(?\s*([AB])\b", r"\b(?:option|response)\s*\(?([AB])\)?\s+is\s+(?:better|less harmful|preferred)",
                                          r"\(([AB])\)", r"\b([AB])\b")]


def parse_letter(text: str) -> str:
    "The seed parser: the first pattern that matches wins; no match -> 'A'."
    for p in PATTERNS:
        m = p.search(text)
        if m: return m.group(1).upper()
    return "A"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--pairs", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=300, help="analysis length for the seed labeller")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    path = shared_path("hh-rlhf/harmless-base/test.jsonl.gz")
    if path is None: raise SystemExit("needs ../shared/data/hh-rlhf/harmless-base/test.jsonl.gz (see shared/data/README.md)")
    pairs = shuffle_human_pairs(load_hh_rlhf_pairs(path, limit=a.pairs, seed=a.seed, single_turn=True), seed=a.seed)
    model, tok = load_model(a.model)
    lab = AILabeller(model, tok, batch_size=a.batch_size, seed=a.seed, progress=True)
    questions = [lab.principle(p["id"]).comparison_question for p in pairs]   # same principle for both labellers
    print(f"{len(pairs)} hh-rlhf pairs, model {a.model} ({next(model.parameters()).dtype}), batch {a.batch_size}, "
          f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.2f}")

    gen = Generator(model, tok, GenerationConfig(max_new_tokens=a.max_new_tokens, batch_size=a.batch_size))
    t0 = time.time()
    outs = gen.generate([SEED_PROMPT.format(prompt=p["prompt"], question=q, a=p["response_a"], b=p["response_b"])
                         for p, q in zip(pairs, questions)], desc="seed labeller")
    t_seed = time.time() - t0
    seed_labels = [parse_letter(g.text).lower() for g in outs]
    n_tok = sum(g.completion_tokens for g in outs)
    parsed = sum(any(p.search(g.text) for p in PATTERNS) for g in outs)

    t0 = time.time()
    recs = lab.label(pairs, desc="log-prob labeller")
    t_lp = time.time() - t0
    print(f"load average after: {os.getloadavg()[0]:.2f}")

    k_seed = sum(l == p["human_label"] for l, p in zip(seed_labels, pairs))
    lo, hi = wilson_interval(k_seed, len(pairs))
    ag, br = agreement_of(recs), bias_report(recs)
    n = len(pairs)
    print(f"\n| labeller | labels/s | s/label | agreement with humans (95% CI) | notes |\n|---|---|---|---|---|")
    print(f"| seed (generate {a.max_new_tokens} tok + regex) | {n/t_seed:.2f} | {t_seed/n:.3f} | {k_seed/n:.3f} ({lo:.3f}-{hi:.3f}) | "
          f"{n_tok/n:.0f} tokens/pair; answered A {seed_labels.count('a')}/{n}; no pattern matched (-> A) {n - parsed}/{n} |")
    print(f"| log-prob letters, both orders | {n/t_lp:.2f} | {t_lp/n:.3f} | {ag.agreement} ({ag.ci[0]}-{ag.ci[1]}) | "
          f"ties {ag.ties}; position consistency {br.position_consistency}; first-slot rate {br.first_slot_rate} |")
    print(f"\nspeed-up (labels/s, log-prob / seed): {t_seed/t_lp:.1f}x  (target >= 5x)")
    print(f"chance level: seed {'yes' if lo <= .5 <= hi else 'no'}, log-prob {'yes' if ag.chance_level else 'no'}")
    write_results("preferences", [
        {"labeller": f"seed (generate {a.max_new_tokens} tok + regex)", "n": n, "s/label": round(t_seed / n, 3),
         "agreement with humans": round(k_seed / n, 3), "95% CI": f"{lo:.3f}-{hi:.3f}", "answered A": seed_labels.count("a")},
        {"labeller": "log-prob letters, both orders", "n": n, "s/label": round(t_lp / n, 3), "agreement with humans": ag.agreement,
         "95% CI": f"{ag.ci[0]}-{ag.ci[1]}", "ties": ag.ties, "position consistency": br.position_consistency}],
        summary={"speed-up": round(t_seed / t_lp, 1), "target": ">= 5x", "model": a.model, "batch": a.batch_size})


if __name__ == "__main__":
    main()
