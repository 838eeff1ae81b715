"""Study-size levers on the VALIDATION split (numbers: nbs/study_results/val_full.json, by val_full_table.py). As run
for the study (OUT: a folder outside the repository, e.g. ../runs/study-valfull):

    python experiments/study/val_full.py OUT study steps16 xstest xstest-steps32 xstest-rl   # --dry-run: configs only

val_levers.py chose `prefix-answer` on 24 @fit prompts; at the study's full size its held-out SL-CAI over-refused 72%
of benign prompts (nbs/study_results/study.json of the first full run). These levers are the `study` preset at full
size with one change, trained on every `@fit` prompt (training prompts outside `@val`) and scored on the `@val` prompts:
built-in + hh-rlhf[60] (as in the study) and XSTest's `@val` part, whose 250 safe prompts are built to look harmful
and are the test of over-refusal. No `@heldout` prompt is used.

The rule, fixed before the steps16 and xstest-steps32 rows were seen: the study preset takes, among the levers that
raise harmful refusal on @val (all sources pooled) by >= 20 points, the one with the smallest rise in benign
over-refusal on @val (built-in and XSTest benign prompts pooled).
"""
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from cai_workbench.core.run import Run   # noqa: E402
from cai_workbench.launch.sweeps import reuse_stages   # noqa: E402
from cai_workbench.pipeline import PipelineConfig, preset_path, run_pipeline   # noqa: E402
from experiments._common import lever_main   # noqa: E402

XSTEST = "../shared/data/xstest/xstest_prompts.csv?"
BASE = "red-team+benign+hh-rlhf[60]?"
LEVERS = {   # name: {stage: changes}
    "study":         {},
    "steps16":       {"sft": {"max_steps": 16}},
    "xstest":        {"critique_revision": {"prompts": f"{BASE}+{XSTEST}@fit"}, "sft": {"max_steps": 80}},
    "xstest-steps32": {"critique_revision": {"prompts": f"{BASE}+{XSTEST}@fit"}, "sft": {"max_steps": 32}},
    # PPO/DPO settings (issue 12 §4): the chosen lever's SL-CAI (reused from its run) then preferences, reward model,
    # PPO with 4x the preset's updates and DPO as in the preset; every stage scored on @val
    "xstest-rl":     {"critique_revision": {"prompts": f"{BASE}+{XSTEST}@fit"}, "sft": {"max_steps": 80}, "ppo": {"total_updates": 16}},
}
RL = {"xstest-rl": "xstest"}   # lever: the lever whose critique_revision and sft it reuses


def config(name: str) -> PipelineConfig:
    c = yaml.safe_load(preset_path("study").read_text()); c["name"] = f"study-valfull-{name}"
    c["critique_revision"]["prompts"] = f"{BASE}@fit"; c["sft"]["max_steps"] = 32   # the preset as these levers started from
    for stage, ch in LEVERS[name].items(): c[stage].update(ch)
    c["evaluation"].update(prompts=[f"{BASE}@val", f"{XSTEST}@val"], stages=["base", "sft"] + (["ppo", "dpo"] if name in RL else []), pairwise="none",
                           judges=["refusal"], validate_classifier=False, n_examples=0)
    c["stages"] = ["critique_revision", "sft", "evaluation"] if name not in RL else c["stages"]   # what the lever runs
    if name in RL:   # its preferences and PPO read the preset's red-team+benign@train, which holds @val: recorded that way in
        c["evaluation"]["allow_train_overlap"] = True   # val_full.json; the launch check now says so and marks every figure
    return PipelineConfig.from_dict(c, where=f"validation lever {name}")


def run_lever(out: Path, name: str, cfg: PipelineConfig):
    "Run lever `name` into OUT/<name>; an RL lever reuses the critique_revision and sft of the lever it builds on."
    run = Run.create(out/name, config=cfg, seed=cfg.seed)
    stages = ["critique_revision", "sft", "evaluation"]
    if name in RL:
        src = out/RL[name]
        assert (src/"config.yaml").exists() and PipelineConfig.from_dict(yaml.safe_load((src/"config.yaml").read_text())).stage_config("sft") == cfg.stage_config("sft")
        reuse_stages(Run(src), run, ["critique_revision", "sft"])
        stages = ["critique_revision", "sft", "preferences", "reward_model", "ppo", "dpo", "evaluation"]
    run_pipeline(cfg, run_dir=run.path, stages=stages, where=f"validation lever {name}")


def main(argv=None): lever_main(__doc__, LEVERS, config, run_lever, argv)


if __name__ == "__main__":
    main()
