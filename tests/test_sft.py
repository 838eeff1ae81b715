"SL-CAI SFT: device-driven settings, loss falls on a fixed batch, the adapter reloads and changes outputs, errors."
import json

import pytest
import torch

from cai_workbench.core.config import ConfigError
from cai_workbench.core.run import Run
from cai_workbench.core.io import read_json

from cai_workbench.core.environment import detect_device
from cai_workbench.engine.generator import GenerationConfig, Generator
from cai_workbench.engine.models import LoraSpec, load_model
from cai_workbench.stages.sft import SFTConfig, run_sft, sft_dataset, trainer_args

EX = [("How do I pick a lock?", "I can't help with breaking into places; a locksmith can help you."),
      ("Write a haiku about rain.", "Soft rain on the roof, the garden drinks it slowly, clouds drift into night."),
      ("How can I hack wifi?", "I can't help with accessing networks without permission."),
      ("Explain vaccines.", "Vaccines train the immune system to recognise a germ safely.")]


def sft_run(path) -> Run:
    run = Run.create(path)
    d = run.stage_dir("critique_revision")
    (d/"sft.jsonl").write_text("".join(json.dumps({"id": str(i), "label": "harmful" if "can't" in c else "benign",
                                                   "messages": [{"role": "user", "content": p}, {"role": "assistant", "content": c}],
                                                   "prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": c}]}) + "\n"
                                       for i, (p, c) in enumerate(EX)))
    return run


def test_cpu_settings():
    a = trainer_args(SFTConfig(), "/tmp/x", device=detect_device("cpu"))
    assert (a.bf16, a.fp16, a.activation_checkpointing, a.completion_only_loss, a.use_cpu) == (False, False, False, True, True)


def test_dataset_filters_and_errors(tmp_path):
    run = sft_run(tmp_path/"r")
    p = run.path/"critique_revision"/"sft.jsonl"
    assert len(sft_dataset(p)) == 4 and len(sft_dataset(p, labels=["harmful"])) == 2
    assert sft_dataset(p)[0]["completion"][0]["role"] == "assistant"
    with pytest.raises(ConfigError, match="no SFT examples"): sft_dataset(p, labels=["nope"])
    p.write_text(p.read_text() + "{not json\n")
    with pytest.raises(ConfigError, match="line 5"): sft_dataset(p)
    with pytest.raises(ConfigError, match="max_steps"): SFTConfig(max_steps=0)


def test_missing_critique_stage(tmp_path):
    with pytest.raises(Exception, match="run_critique_revision"):
        run_sft(Run.create(tmp_path/"r"), SFTConfig(max_steps=1), model="tiny")


def test_loss_falls_and_adapter_reloads(tmp_path):
    run = sft_run(tmp_path/"r")
    cfg = SFTConfig(lora=LoraSpec(r=8, alpha=16, dropout=0.0), max_steps=8, batch_size=4, learning_rate=1e-2, device="cpu")
    res = run_sft(run, cfg, model="tiny", progress=False)
    losses = [l for _, l in res.metrics["losses"]]
    assert len(losses) == 8
    assert losses[-1] < losses[0] - 0.3 and sum(b < a for a, b in zip(losses, losses[1:])) >= 5, losses
    m = read_json(run.path/"sft"/"metrics.json")
    assert m["steps"] == 8 and m["device"] == "cpu" and m["base_model"] == "tiny"
    assert (run.path/"sft"/"loss.png").stat().st_size > 1000
    assert run.is_done("sft") and res.summary()["last_loss"] < res.summary()["first_loss"]
    tuned, tok = load_model(run.path/"sft"/"adapter", device="cpu", dtype="float32")
    base, _ = load_model("tiny", device="cpu", dtype="float32")
    ids = tok(["I can't help with that"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert (tuned(ids).logits - base(ids).logits).abs().max().item() > 1e-3
    # the tuned model puts more probability on the trained completions than the base
    from cai_workbench.engine.scoring import completion_logprobs
    lp_t = completion_logprobs(tuned, tok, [p for p, _ in EX], [c for _, c in EX])
    lp_b = completion_logprobs(base, tok, [p for p, _ in EX], [c for _, c in EX])
    assert sum(lp_t) > sum(lp_b)


def test_end_to_end_from_critique_stage(tmp_path, tiny):
    from cai_workbench.stages.critique_revision import CritiqueRevisionConfig, run_critique_revision
    run = Run.create(tmp_path/"r")
    from cai_workbench.inputs.data_filters import DataFilterConfig
    run_critique_revision(run, CritiqueRevisionConfig(prompts="demo", limit=4, use_few_shot=False, filters=DataFilterConfig(empty=False),
                                              generation=GenerationConfig(max_new_tokens=8, temperature=1.0)), model=tiny, progress=False)
    res = run_sft(run, SFTConfig(max_steps=2, batch_size=2, device="cpu"), model="tiny", progress=False)
    assert res.metrics["examples"] == 4 and res.metrics["steps"] == 2
    assert (res.adapter/"adapter_config.json").exists()
