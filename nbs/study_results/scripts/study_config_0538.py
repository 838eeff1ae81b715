"""The config of the study run, exactly as written at 05:38 UTC (the chain's study-decide.sh lost its write_text line
in an edit, so its 05:33 attempt stopped at once with 'config file not found'; its printed choice - commentary: drop,
hh-rlhf[10], limit 48 - was then written by this snippet, leaving PPO and DPO out to finish before 06:00)."""
import yaml
from pathlib import Path
c = yaml.safe_load(Path("/work/snap-study-main/cai_workbench/data/presets/study.yaml").read_text())
c["stages"] = ["critique_revision", "sft", "preferences", "reward_model", "evaluation"]
cr, ev = c["critique_revision"], c["evaluation"]
cr["commentary"] = "drop"; cr["prompts"] = "red-team+benign+hh-rlhf[10]?@train"; cr["limit"] = 48
ev["prompts"] = ["red-team+benign@heldout", "hh-rlhf[10]?@heldout"]
Path("/work/runs/study-config.yaml").write_text(yaml.safe_dump(c, sort_keys=False))
