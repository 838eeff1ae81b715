"""The lever variants of the study, exactly as run: `python levers.py NAME [NAME ...]` (names below).

Each variant is the `study` preset with one change, in its own run folder under /work/runs/study-levers/, trained on
the same `@train` prompts and evaluated on the same `@heldout` prompts as /work/runs/study (the main run). What the
variant shares with the main run by construction is copied, not recomputed (the 2-core machine was shared by ~7
agents): generation steps whose record stores are keyed by exactly what they depend on (`critique._steps_key`,
`evaluation._answers_key`: same prompts, same settings, greedy decoding), and, for an evaluation-only lever, the
main run's finished stages (`sweeps.reuse_stages`). Every setting was fixed before any held-out result was seen.
"""
import json, shutil, sys, time
from pathlib import Path

import yaml

from cai_workbench.core.run import Run
from cai_workbench.core.io import read_json
from cai_workbench.stages.critique_revision import _steps_key, prepare
from cai_workbench.pipeline import PipelineConfig, preset_path, run_pipeline
from cai_workbench.launch.sweeps import reuse_stages

MAIN, OUT = Path("/work/runs/study"), Path("/work/runs/study-levers")
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


def prepare_variant(name: str):
    "The variant's run folder with what it shares with the main run copied in, and its stages up to evaluation run."
    crit, ev, files = VARIANTS[name]
    c = json.loads(json.dumps(PRESET)); c["name"] = f"study-{name}"
    c["evaluation"] = {**c["evaluation"], **LEVER_EVAL, **ev}
    if crit is not None: c["critique_revision"].update(crit)
    cfg = PipelineConfig.from_dict(c, where=f"study lever {name}")
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


if __name__ == "__main__":
    t0, made = time.time(), [(n, *prepare_variant(n)) for n in sys.argv[1:]]
    for n, cfg, run in made: evaluate_variant(cfg, run); print(f"lever {n}: done at {time.time() - t0:.0f} s", flush=True)
