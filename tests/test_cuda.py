"""The CUDA path, `pytest -m cuda`: every stage end to end on a GPU (tiny model, and a randomly initialised model of
real shape built offline from a config), bf16 where the GPU supports it, every tensor on the GPU, no host syncs that
grow with the number of tokens in our PPO update, hf and hf-paged engines, 4-bit loading when bitsandbytes is
importable. Without a CUDA GPU (CI) every test here skips with the reason.

On the GPU machine: `bash scripts/gpu-check.sh` (installs the wheels it lacks, runs this file and bench/gpu.py)."""
import json, warnings
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here: run `pytest -m cuda` on a GPU machine")]

# Qwen2-0.5B's shape (hidden 896, 24 layers, 14 heads / 2 KV heads, MLP 4864, vocab 151,936, tied embeddings)
QWEN_05B = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True, max_position_embeddings=4096)


def real_shape_model(path: Path, shape: dict = QWEN_05B, seed: int = 0, device: str = "cuda") -> Path:
    "A randomly initialised Qwen2-style model of real shape with the tiny test tokenizer, saved to `path` (no hub)."
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from cai_workbench.engine.embedded import tiny_model
    _, tok = tiny_model()
    torch.manual_seed(seed)
    cfg = Qwen2Config(**shape, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    with torch.device(device): model = Qwen2ForCausalLM(cfg)
    model.to(torch.bfloat16).save_pretrained(path); tok.save_pretrained(path)
    return path


def test_detect_device_picks_cuda_in_bf16_where_supported():
    from cai_workbench.core.environment import detect_device
    dev = detect_device()
    assert dev.kind == "cuda"
    want = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    assert dev.infer_dtype == want and dev.mixed_precision == {"bfloat16": "bf16", "float16": "fp16"}[want]


@pytest.mark.parametrize("backend", ["hf", "hf-paged"])
def test_generator_on_cuda(backend):
    from cai_workbench.engine.generator import Generator
    from cai_workbench.engine.models import load_model
    m, tok = load_model("tiny")
    assert all(p.device.type == "cuda" for p in m.parameters())
    assert m.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    outs = Generator(m, tok, max_new_tokens=16, batch_size=4, progress=False, backend=backend)(
        ["hi", "a much longer prompt about bread", "x", "plan a trip"], keep_token_ids=True)
    assert len(outs) == 4 and all(0 < o.completion_tokens <= 16 and len(o.token_ids) == o.completion_tokens for o in outs)


def test_every_stage_end_to_end_on_cuda(tmp_path):
    from cai_workbench.pipeline import load_config, run_pipeline
    cfg, where = load_config("tiny")
    cfg.device = "cuda"
    run_pipeline(cfg, run_dir=tmp_path/"run", where=where, progress=False)
    manifest = json.loads((tmp_path/"run"/"manifest.json").read_text())
    assert all(manifest["stages"][s]["status"] == "done" for s in cfg.stages), manifest["stages"]
    assert manifest["environment"]["device"]["kind"] == "cuda", manifest["environment"]["device"]
    for s in ("sft", "reward_model", "ppo", "dpo"):
        assert (tmp_path/"run"/s/"adapter"/"adapter_config.json").exists(), s


def _ppo_parts(model_path, max_new_tokens: int, device: str = "cuda"):
    from cai_workbench.engine.generator import Generator
    from cai_workbench.engine.models import load_model
    from cai_workbench.rl.ppo import PPOConfig, build_ppo_model, collect_rollouts
    base, tok = load_model(str(model_path), purpose="train", device=device)
    cfg = PPOConfig(batch_size=4, minibatch_size=2, ppo_epochs=1, generation={"max_new_tokens": max_new_tokens})
    model = build_ppo_model(base, cfg)
    gen = Generator(model.peft, tok, batch_size=4, progress=False)
    reward = lambda prompts, responses: [float(len(r)) / 50 for r in responses]
    ro = collect_rollouts(model, gen, ["hi there", "plan a trip", "bake bread", "fix a bug"], reward, cfg, 0.05, seed=0)
    return model, cfg, ro


def _syncs_during(fn) -> int:
    "How many times `fn` made the host wait for the GPU (torch's sync debug mode warns once per sync)."
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(x.message).lower() for x in w)


def test_real_shape_ppo_update_on_cuda_has_no_per_token_syncs(tmp_path):
    from cai_workbench.rl.ppo import ppo_update
    path = real_shape_model(tmp_path/"qwen-0.5b-shape")
    counts = {}
    for R in (8, 32):
        model, cfg, ro = _ppo_parts(path, R)
        assert ro.ids.device.type == "cuda" and ro.logprobs.device.type == "cuda" and ro.advantages.device.type == "cuda"
        assert all(p.device.type == "cuda" for p in model.trainable_parameters())
        opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-5)
        counts[R] = _syncs_during(lambda: ppo_update(model, opt, ro, cfg, torch.Generator().manual_seed(0)))
        del model, opt, ro; torch.cuda.empty_cache()
    assert counts[8] == counts[32], counts          # host syncs per minibatch, never per token


def test_4bit_loading_when_bitsandbytes_is_there(tmp_path):
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed: 4-bit loading is not checked")
    from cai_workbench.engine.models import load_model
    m, _ = load_model(str(real_shape_model(tmp_path/"q")), load_in_4bit=True)
    assert any(type(mod).__name__ == "Linear4bit" for mod in m.modules())
