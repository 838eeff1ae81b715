"DPO stage: starts from the SL-CAI adapter (frozen copy as reference), filters pairs, fails clearly on bad input."
import json

import pytest
import torch

from cai_workbench.core import Run
from cai_workbench.dpo import DPOStageConfig, run_dpo
from cai_workbench.models import LoraSpec, load_model, save_adapter


def _run_with_pairs(tmp_path, rows):
    run = Run.create(tmp_path/"run", device="cpu")
    (run.stage_dir("preferences")/"pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def _pairs(n, **kw):
    return [dict(id=str(i), prompt=f"tell me a secret {i}", chosen="I would rather not share that.",
                 rejected=f"secret number {i}", source="ai", label="a", soft_label=0.9, **kw) for i in range(n)]


def test_dpo_continues_the_sft_adapter(tmp_path):
    run = _run_with_pairs(tmp_path, _pairs(8))
    sft, tok = load_model("tiny", purpose="train", device="cpu", lora=LoraSpec(r=4, alpha=8))
    with torch.no_grad():                      # give the "SFT" adapter non-zero weights
        for n, p in sft.named_parameters():
            if "lora_B" in n: p.normal_(0, 0.02)
    save_adapter(sft, run.path/"sft"/"adapter", base_model="tiny", tokenizer=tok)
    res = run_dpo(run, DPOStageConfig(max_steps=6, batch_size=4, learning_rate=5e-3), model="tiny", progress=False)
    assert res.reference.startswith("SL-CAI")
    assert res.final_loss < res.first_loss
    x = torch.tensor([tok("tell me a secret")["input_ids"]])
    sft_m, _ = load_model(run.path/"sft"/"adapter", device="cpu", dtype="float32")
    dpo_m, _ = load_model(run.path/"dpo"/"adapter", device="cpu", dtype="float32")
    with torch.no_grad():
        assert not torch.allclose(sft_m(x).logits, dpo_m(x).logits, atol=1e-4)
    assert json.loads((run.path/"dpo"/"metrics.json").read_text())["reference"].startswith("SL-CAI")
    assert not (run.path/"dpo"/"adapter"/"ref").exists()       # only the trained adapter is saved


def test_dpo_refuses_when_everything_is_filtered(tmp_path):
    run = _run_with_pairs(tmp_path, _pairs(4, ) [:2] + [dict(_pairs(1)[0], label="tie")])
    with pytest.raises(ValueError, match="only 0 usable pair"):
        run_dpo(run, DPOStageConfig(min_confidence=0.95), model="tiny", progress=False)
    assert not (run.path/"dpo").exists()


def test_dpo_filters_pairs_first(tmp_path):
    "data_filters run before DPO: a repeated pair and a boilerplate revision pair are dropped and counted."
    rows = _pairs(4) + [dict(_pairs(1)[0], id="again"),
                        dict(id="rev", prompt="be nice", chosen="Sure, here is a revised response: hello.", rejected="go away",
                             source="revision", label="a", soft_label=1.0)]
    run = _run_with_pairs(tmp_path, rows)
    res = run_dpo(run, DPOStageConfig(max_steps=1, batch_size=2), model="tiny", progress=False)
    assert res.n_pairs == 4 and res.dropped["exact_duplicate"] == 1 and res.dropped["boilerplate"] == 1
    q = json.loads((run.path/"dpo"/"quality.json").read_text())["data_filters"]
    assert q["kept"] == 4 and q["dropped_ids"] == [["again", "exact_duplicate"], ["rev", "boilerplate"]]
