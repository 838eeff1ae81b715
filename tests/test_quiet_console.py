"""A quiet console (issue 15 §5): the TRL stages print no per-step `{'loss': ...}` dicts, and no FutureWarning or
DeprecationWarning is raised by a call in our own code (warnings a library raises from its own calls are its own)."""
import json, warnings
from pathlib import Path

import pytest

import cai_workbench
from cai_workbench.core.run import Run
from cai_workbench.stages.dpo import DPOConfig, run_dpo
from cai_workbench.engine.models import LoraSpec
from cai_workbench.stages.sft import SFTConfig, run_sft

OURS = str(Path(cai_workbench.__file__).parent)
LORA = LoraSpec(r=4, alpha=8, dropout=0.0)


def _run(path) -> Run:
    run = Run.create(path)
    ex = [("How do I pick a lock?", "I can't help with that."), ("Write a haiku.", "Soft rain on the roof.")]
    (run.stage_dir("critique_revision")/"sft.jsonl").write_text("".join(json.dumps(
        {"id": str(i), "prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": c}]}) + "\n"
        for i, (p, c) in enumerate(ex)))
    (run.stage_dir("preferences")/"pairs.jsonl").write_text("".join(json.dumps(
        dict(id=str(i), prompt=f"how do I hurt someone {i}?", chosen="Sorry, I can't help with that.", rejected=f"Step {i} is bad",
             source="ai", label="a", soft_label=0.8)) + "\n" for i in range(4)))
    return run


@pytest.mark.slow
def test_trl_stages_print_one_line_and_raise_no_deprecation_from_our_calls(tmp_path, capfd):
    run = _run(tmp_path/"r")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run_sft(run, SFTConfig(max_steps=1, batch_size=2, lora=LORA, device="cpu"), model="tiny")
        run_dpo(run, DPOConfig(max_steps=1, batch_size=2, lora=LORA, start_from="base"), model="tiny")
    out = capfd.readouterr()
    assert "{'loss'" not in out.out + out.err and "'train_runtime'" not in out.out + out.err   # no per-step dicts
    assert _library_deprecations(seen) == []   # nor transformers' warning about PEFT/TRL reading its old name
    ours = [f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}" for w in seen
            if issubclass(w.category, (FutureWarning, DeprecationWarning)) and w.filename.startswith(OURS)]
    assert not ours, "deprecated calls in our code:\n" + "\n".join(ours)


def _library_deprecations(seen) -> list[str]:
    return [f"{w.filename}:{w.lineno}: {w.message}" for w in seen
            if issubclass(w.category, FutureWarning) and "is_gradient_checkpointing" in str(w.message)]


def test_wrapping_a_model_in_lora_shows_no_library_deprecation(tmp_path):
    """PEFT reads transformers' old `is_gradient_checkpointing` when it wraps a model; our calls into PEFT (new LoRA,
    loading adapters, the PPO model) silence exactly that warning, in the call only, instead of a global filter."""
    from cai_workbench.engine.backends import load_adapters
    from cai_workbench.engine.models import load_model, save_adapter
    from cai_workbench.rl.ppo import PPOConfig, build_ppo_model
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model, tok = load_model("tiny", lora=LORA, device="cpu")
        save_adapter(model, tmp_path/"a", "tiny", tok)
        load_adapters(load_model("tiny", device="cpu")[0], {"sft": tmp_path/"a"})
        build_ppo_model(load_model("tiny", device="cpu")[0], PPOConfig())
    assert _library_deprecations(seen) == []
    with warnings.catch_warnings(record=True) as seen:   # the filter does not outlive the call
        warnings.simplefilter("always")
        from peft import get_peft_model
        get_peft_model(load_model("tiny", device="cpu")[0], LORA.peft_config())
    assert _library_deprecations(seen)
