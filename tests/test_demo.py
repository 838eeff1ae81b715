"""`make demo` ends with a result a newcomer can check (issue 31 item 5): the demo preset is the known-answer probe setup
(constitution `probe`, trained on `probe-train`, evaluated on `probe-heldout`, the probe stage last), and the command's
last lines are the probe's rates per stage with their intervals, then its verdict."""
import json

from cai_workbench.core.io import write_jsonl
from cai_workbench.core.run import Run
from cai_workbench.pipeline import load_config


def test_the_demo_preset_is_the_known_answer_setup():
    cfg, where = load_config("demo")
    cfg.check(where)                                                       # and evaluation reads no training prompt
    assert (cfg.constitution, cfg.prompts, cfg.eval_prompts) == ("probe", "probe-train", ["probe-heldout"])
    assert cfg.stages[0] == "critique_revision" and cfg.stages[-2:] == ["evaluation", "probe"]
    assert {"sft", "preferences", "reward_model", "dpo"} <= set(cfg.stages)
    cr, pref, ev = cfg.stage_config("critique_revision"), cfg.stage_config("preferences"), cfg.stage_config("evaluation")
    assert cr.constitution == pref.constitution == ev.constitution == "probe" and cr.prompts == "probe-train"
    assert pref.sources == ["revision"] and cfg.stage_config("dpo").start_from == "sft"
    assert ev.prompts == ["probe-heldout"] and "probe-dear-friend" in ev.judges and ev.limit is None
    assert cfg.stage_config("probe").property == "dear-friend"


def test_the_run_command_ends_with_the_probe_rates_then_the_verdict(tmp_path, capsys):
    from cai_workbench.cli import main
    run = Run.create(tmp_path/"run", seed=0)
    (run.path/"evaluation").mkdir()
    write_jsonl(run.path/"evaluation"/"responses.jsonl",
                [{"id": f"{s}:fp:h{i}", "stage": s, "prompt_id": f"h{i}", "prompt": f"Held-out question {i}?",
                  "text": ("Dear friend, " if i < k else "") + f"answer {i} from {s}."}
                 for s, k in {"base": 0, "sft": 20}.items() for i in range(32)])
    cfg = tmp_path/"p.yaml"
    cfg.write_text("name: d\nmodel: tiny\nstages: [probe]\nprobe:\n  reward_model: false\n")
    assert main(["run", str(cfg), "--run-dir", str(run.path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("probe passed")
    tail = out[out.index(next(l for l in reversed(out) if l.startswith("total: "))):]   # what follows the run's table
    head = next(i for i, l in enumerate(tail) if l.startswith("probe: "))
    assert "held-out prompts, n=32" in tail[head] and tail[head + 1].split()[:3] == ["stage", "rate", "95%"]
    rows = {l.split()[0]: l for l in tail[head + 2:] if l.split() and l.split()[0] in ("base", "sft")}
    assert rows["base"].split()[1] == "0%" and rows["sft"].split()[1] == "62%" and "[" in rows["sft"]
    assert json.loads((run.path/"probe"/"summary.json").read_text())["passed"] is True
