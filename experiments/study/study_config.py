"""Writes the config of a study run: the `study` preset with the choices made after the validation levers, sized to
the time left. nbs/study_results/study_config.yaml is this script's output at 05:38 UTC on 2026-12-02, from the preset
of that day's code snapshot (commit 5167d5f), with the defaults below:

    python experiments/study/study_config.py --out nbs/study_results/study_config.yaml \
        --preset <(git show 5167d5f:cai_workbench/data/presets/study.yaml)

The choices (the chain that ran it decided them from val_levers.json and the time left before 06:00 UTC, then lost its
write in an edit; this snippet wrote them): commentary: drop, hh-rlhf[10] in training and held-out prompts, a
critique-revision limit of 48, and no PPO or DPO so the run could finish in time. Then
`cai-workbench run CONFIG --run-dir RUN` and study_table.py --run RUN."""
import argparse, sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from cai_workbench.pipeline import PipelineConfig, preset_path   # noqa: E402

STAGES = "critique_revision,sft,preferences,reward_model,evaluation"


def study_config(preset: dict, stages: list[str], commentary: str, hh: int, limit: int | None) -> dict:
    "The preset (a dict, as read from YAML) with the study run's choices."
    c = dict(preset)
    c["stages"] = stages
    cr, ev = c["critique_revision"], c["evaluation"]
    cr["commentary"] = commentary; cr["prompts"] = f"red-team+benign+hh-rlhf[{hh}]?@train"; cr["limit"] = limit
    ev["prompts"] = ["red-team+benign@heldout", f"hh-rlhf[{hh}]?@heldout"]
    return c


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="the config file to write")
    ap.add_argument("--preset", type=Path, default=None, help="the preset YAML to start from (default: this checkout's `study` preset)")
    ap.add_argument("--stages", default=STAGES, help=f"comma-separated (default, as run: {STAGES})")
    ap.add_argument("--commentary", choices=("drop", "keep"), default="drop", help="critique_revision.commentary (default, as run: drop)")
    ap.add_argument("--hh", type=int, default=10, help="hh-rlhf prompts in training and held-out prompts (default, as run: 10)")
    ap.add_argument("--limit", type=int, default=48, help="critique_revision.limit (default, as run: 48)")
    a = ap.parse_args(argv)
    preset = yaml.safe_load((a.preset or preset_path("study")).read_text())
    c = study_config(preset, a.stages.split(","), a.commentary, a.hh, a.limit)
    PipelineConfig.from_dict(c, where=str(a.out)).check(where=str(a.out))   # a config the pipeline accepts
    a.out.write_text(yaml.safe_dump(c, sort_keys=False))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
