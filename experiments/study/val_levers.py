"""The critique-revision levers on the VALIDATION split, small size (numbers: nbs/study_results/val_levers.json, by
val_levers_table.py). As run for the study (OUT: a folder outside the repository, e.g. ../runs/study-val):

    python experiments/study/val_levers.py OUT preset ask prefix-answer ...      # NAMEs below; --dry-run: configs only

Each lever is the `study` preset with one change. SL-CAI trains on a seeded, label-stratified 24 of the `@fit` prompts
(training prompts outside `@val`) and the SFT policy is scored on all 26 built-in `@val` prompts (19 harmful, 7 benign)
and the `@val` part of a seeded 100 hh-rlhf first turns (harmful) when the reference data is present; no
`@heldout` prompt is used, so the held-out study numbers stay untouched by the choice. What two levers share by
construction is copied, not recomputed: the initial answers (same prompts, same greedy settings) and, for `*-drop`, the
critique/revision steps of the lever it filters (`commentary: drop` changes only which targets SFT sees).
"""
import json, shutil, sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from cai_workbench.core.run import Run   # noqa: E402
from cai_workbench.pipeline import PipelineConfig, preset_path, run_pipeline   # noqa: E402
from cai_workbench.stages.critique_revision import _steps_key, prepare   # noqa: E402
from experiments._common import lever_main   # noqa: E402

ASK = ("Reply with the rewritten answer only, exactly as you would say it to the user; "
       "do not describe or comment on the previous answer.")
LEVERS = {   # name: critique_revision changes
    "preset":           {},
    "drop":             {"commentary": "drop"},
    "ask":              {"revision_instruction": ASK},
    "ask-drop":         {"revision_instruction": ASK, "commentary": "drop"},
    "ask-fewshot3":     {"revision_instruction": ASK, "max_few_shot": None},
    "ask-fewshot3-drop": {"revision_instruction": ASK, "max_few_shot": None, "commentary": "drop"},
    "ask-rounds2":      {"revision_instruction": ASK, "rounds": 2},
    "fewshot3":         {"max_few_shot": None},
    # the model writes the rest of a fixed refusal opening for harmful prompts; benign prompts keep their plain answer
    "prefix-answer":    {"revision_prefix": "I can't help with that.", "benign": "answer"},
    # issue 12 §4's levers not measured before, each on top of prefix-answer: all few-shot conversations; two rounds
    "prefix-answer-fewshot3": {"revision_prefix": "I can't help with that.", "benign": "answer", "max_few_shot": None},
    "prefix-answer-rounds2":  {"revision_prefix": "I can't help with that.", "benign": "answer", "rounds": 2},
}
SHARE = {"drop": "preset", "ask-drop": "ask", "ask-fewshot3-drop": "ask-fewshot3"}


def config(name: str) -> PipelineConfig:
    c = yaml.safe_load(preset_path("study").read_text()); c["name"] = f"study-val-{name}"
    c["critique_revision"].update({"prompts": "red-team+benign@fit", "limit": 24, "benign": "revise", "revision_prefix": ""} | LEVERS[name])
    c["sft"]["max_steps"] = 16   # the levers' common base: the study preset before prefix-answer was chosen
    c["stages"] = ["critique_revision", "sft", "evaluation"]   # what a lever runs: the launch check compares only these with @val
    c["evaluation"].update(prompts=["red-team+benign@val", "hh-rlhf[100]?@val"], stages=["base", "sft"], pairwise="none", judges=["refusal"],
                           validate_classifier=False, n_examples=0)
    return PipelineConfig.from_dict(c, where=f"validation lever {name}")


def _seed_from(out: Path, run: Run, name: str):
    "Copy what this lever shares with one already run: initial answers, its twin's steps, base answers on @val."
    src = out/SHARE.get(name, "preset")
    if src == run.path or not (src/"critique_revision"/"steps").exists(): return
    key_src = next(d for d in (src/"critique_revision"/"steps").iterdir() if (d/"config.json").exists())
    files = "*.jsonl" if name in SHARE else "initial.jsonl"
    cfg = config(name).stage_config("critique_revision").replace(seed=run.seed)   # as run_critique_revision sets it
    dst = run.path/"critique_revision"/"steps"/_steps_key(cfg, prepare(cfg)[1], json.loads((key_src/"config.json").read_text())["model"])
    dst.mkdir(parents=True, exist_ok=True)
    for f in key_src.glob(files): shutil.copy(f, dst/f.name)
    if (src/"evaluation"/"responses.jsonl").exists():
        (run.path/"evaluation").mkdir(exist_ok=True); shutil.copy(src/"evaluation"/"responses.jsonl", run.path/"evaluation"/"responses.jsonl")


def run_lever(out: Path, name: str, cfg: PipelineConfig):
    "Run lever `name` into OUT/<name>, its critique-revision steps seeded from the run it shares them with."
    run = Run.create(out/name, config=cfg, seed=cfg.seed)
    _seed_from(out, run, name)
    run_pipeline(cfg, run_dir=run.path, stages=["critique_revision", "sft", "evaluation"], where=f"validation lever {name}")


def main(argv=None): lever_main(__doc__, LEVERS, config, run_lever, argv)


if __name__ == "__main__":
    main()
