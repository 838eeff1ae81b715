"""The lever variants of the study on the HELD-OUT split, as run (the previous session's levers; their numbers are
reported in nbs/study_results/lever_runs.json by study_table.py, never chosen on):

    python experiments/study/heldout_levers.py --main RUNS/study --out RUNS/study-levers NAME [NAME ...]

Names: benign-answer, few-shot-3, no-few-shot, gate, rounds-2, bon4 (below). `--dry-run` builds and checks each
variant's config and prints it, running nothing.

Each variant is the `study` preset with one change, in its own run folder OUT/<name>, trained on the same `@train`
prompts and evaluated on the same `@heldout` prompts as the main run MAIN. What the
variant shares with the main run by construction is copied, not recomputed (the 2-core machine was shared by ~7
agents): generation steps whose record stores are keyed by exactly what they depend on (`critique._steps_key`,
`evaluation._answers_key`: same prompts, same settings, greedy decoding), and, for an evaluation-only lever, the
main run's finished stages (`sweeps.reuse_stages`). Every setting was fixed before any held-out result was seen.
The variants start from the `study` preset of the checkout; the preset has changed since they ran (each run folder's
config.yaml is what ran).
"""
import argparse, json, shutil, sys, time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from cai_workbench.core.io import read_json   # noqa: E402
from cai_workbench.core.run import Run   # noqa: E402
from cai_workbench.launch.sweeps import reuse_stages   # noqa: E402
from cai_workbench.pipeline import PipelineConfig, preset_path, run_pipeline   # noqa: E402
from cai_workbench.stages.critique_revision import _steps_key, prepare   # noqa: E402

MAIN, OUT = None, None   # the main run and the levers' folder: set by main() from --main and --out
PRESET = yaml.safe_load(preset_path("study").read_text())
LEVER_EVAL = {"stages": ["base", "sft"], "pairwise": "none", "ai_judge": False}  # the levers change SL-CAI: base and sft rows, refusal

VARIANTS = {   # name: (critique_revision changes, evaluation changes, files of the main run's steps it shares)
    "benign-answer": ({"benign": "answer"}, {}, "all"),           # benign prompts keep their plain answer as the SFT target
    "few-shot-3":    ({"max_few_shot": None}, {}, ["initial.jsonl"]),  # all 3 few-shot conversations (2 show a refusal)
    "no-few-shot":   ({"use_few_shot": False}, {}, ["initial.jsonl"]),  # without the refusal few-shot the main run prepends
    "gate":          ({"gate": True}, {}, "all"),                 # keep a revision only when the feedback model prefers it
    "rounds-2":      ({"rounds": 2}, {}, ["initial.jsonl", "r1_critique.jsonl", "r1_revision.jsonl"]),
    "bon4":          (None, {"best_of_n": 4, "best_of_n_stages": ["sft"]}, None),   # evaluation only, on the main run's stages
}


def _copy_steps(cfg: PipelineConfig, run: Run, files):
    src = next((MAIN/"critique_revision"/"steps").iterdir())
    ccfg = cfg.stage_config("critique_revision")
    key = _steps_key(ccfg, prepare(ccfg)[1], read_json(src/"config.json")["model"])
    dst = run.path/"critique_revision"/"steps"/key
    dst.mkdir(parents=True, exist_ok=True)
    for f in (sorted(p.name for p in src.glob("*.jsonl")) if files == "all" else files): shutil.copy(src/f, dst/f)


def config(name: str) -> PipelineConfig:
    "The variant's config: the study preset with its one change."
    crit, ev, _ = VARIANTS[name]
    c = json.loads(json.dumps(PRESET)); c["name"] = f"study-{name}"
    c["evaluation"] = {**c["evaluation"], **LEVER_EVAL, **ev}
    if crit is not None: c["critique_revision"].update(crit)
    return PipelineConfig.from_dict(c, where=f"study lever {name}")


def prepare_variant(name: str):
    "The variant's run folder with what it shares with the main run copied in, and its stages up to evaluation run."
    crit, _, files = VARIANTS[name]
    cfg = config(name)
    run = Run.create(OUT/name, config=cfg, seed=cfg.seed)
    if crit is None: reuse_stages(Run(MAIN), run, ["critique_revision", "sft", "preferences", "reward_model"])
    else:
        _copy_steps(cfg, run, files)
        run_pipeline(cfg, run_dir=run.path, stages=["critique_revision", "sft"], where=f"study lever {name}")
    return cfg, run


def evaluate_variant(cfg, run):
    "Evaluation, with the main run's answers of the same stages and settings copied in (its store skips them)."
    while not Run(MAIN).is_done("evaluation"): time.sleep(30)
    (run.path/"evaluation").mkdir(exist_ok=True)
    if not (run.path/"evaluation"/"responses.jsonl").exists():
        shutil.copy(MAIN/"evaluation"/"responses.jsonl", run.path/"evaluation"/"responses.jsonl")
    run_pipeline(cfg, run_dir=run.path, stages=["evaluation"], where=f"study lever {run.path.name}")


def main(argv=None):
    global MAIN, OUT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="+", choices=sorted(VARIANTS), metavar="NAME", help=", ".join(VARIANTS))
    ap.add_argument("--main", type=Path, required=True, help="the main study run folder (what the variants share is copied from it)")
    ap.add_argument("--out", type=Path, required=True, help="the folder the variants' run folders go in")
    ap.add_argument("--dry-run", action="store_true", help="build and check the configs and print them; run nothing")
    a = ap.parse_args(argv)
    MAIN, OUT = a.main, a.out
    if a.dry_run:
        for n in a.names:
            cfg = config(n); cfg.check(where=f"study lever {n}")   # every stage's own config built: errors surface here
            print(f"# {n}\n" + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return
    t0, made = time.time(), [(n, *prepare_variant(n)) for n in a.names]
    for n, cfg, run in made: evaluate_variant(cfg, run); print(f"lever {n}: done at {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
