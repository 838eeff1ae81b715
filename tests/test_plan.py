"Plan: the memory model's parts by hand arithmetic, 4-bit and checkpointing lower it, presets plan offline, and the CLI refuses with exit 1 or 2."
import pytest

from cai_workbench.cli import main
from cai_workbench.core.config import ConfigError
from cai_workbench.launch.plan import (Shape, activation_bytes, kv_cache_bytes, logits_bytes, model_shape, parse_memory, plan,
                                       sampling_bytes, stage_memory, trainable_bytes, weight_bytes)
from cai_workbench.pipeline import load_config

REAL = ["qwen2.5-1.5b", "llama3.1-8b", "m2-qwen2.5-0.5b"]


@pytest.fixture(scope="module")
def qwen():
    return model_shape("Qwen/Qwen2.5-0.5B-Instruct")


def test_parameters_from_the_packaged_config_on_the_meta_device(qwen):
    # Qwen2.5-0.5B: 24 layers of q/k/v (bias), o, gate/up/down + 2 norms, tied 151936 x 896 embeddings, final norm
    h, kv, i, L, V = 896, 128, 4864, 24, 151936
    layer = (h*h + h) + 2*(h*kv + kv) + h*h + 3*h*i + 2*h
    assert qwen.params == L*layer + V*h + h == 494_032_768
    assert qwen.head_params == 0 and (qwen.layers, qwen.kv_heads, qwen.head_dim, qwen.vocab) == (24, 2, 64, V)
    assert qwen.lora_params(16) == L*16*((h + h) + 2*(h + kv) + (h + h) + 2*(h + i) + (i + h))
    assert qwen.lora_params(8, ["q_proj", "v_proj"]) == L*8*((h + h) + (h + kv))
    assert model_shape("meta-llama/Llama-3.1-8B-Instruct").params == 8_030_261_248     # untied: lm_head counted


def test_memory_parts_by_hand(qwen):
    P, V = qwen.params, 151936
    assert weight_bytes(qwen, "bfloat16") == 2*P and weight_bytes(qwen, "float32") == 4*P
    assert kv_cache_bytes(qwen, 8, 512, "bfloat16") == 2*24*2*64*8*512*2
    assert logits_bytes(qwen, 2, 100, "float32") == 2*100*V*12 and logits_bytes(qwen, 2, 100, "bfloat16") == 2*100*V*14
    assert trainable_bytes(1000) == 16000
    assert sampling_bytes(qwen, 8) == 6*8*V*4 + V*8                           # a decoding step: 6 fp32 copies of the last logits + an int64 index
    per_layer = 6*896 + 2*128 + 4*4864                                        # no LoRA dropout
    assert activation_bytes(qwen, 2, 100, "float32", False, lora_dropout=False) == 24*per_layer*200*4 + 2*896*200*4
    assert activation_bytes(qwen, 2, 100, "float32", True, lora_dropout=False) == 24*896*200*4 + per_layer*200*4 + 2*896*200*4


def test_lora_dropout_activations_by_hand(qwen):
    "Measured on CPU (nbs/13c_plan): with LoRA dropout each of the 7 adapters keeps its dropped input and its mask (noise of the dtype on CPU/MPS, 1 byte on CUDA)."
    h, kv, i, t = 896, 128, 4864, 2*100
    keep = 4*h + 2*kv + 3*i                  # 2 residual inputs, q after RoPE, attention output; k, v; gate, up, act (frozen base linears keep no input)
    drop = 6*h + i                           # q, k, v, o, gate, up adapters see hidden-sized inputs, down the intermediate product
    assert activation_bytes(qwen, 2, 100, "float32", False) == 24*(keep + 2*drop)*t*4 + 2*h*t*4
    assert activation_bytes(qwen, 2, 100, "bfloat16", False, mask_bytes=1) == 24*((keep + drop)*2 + drop)*t + 2*h*t*2
    cfg = load_config("m2-qwen2.5-0.5b")[0]
    sec = {"batch_size": 2, "max_length": 100, "gradient_checkpointing": False, "lora": {"dropout": 0.05}}
    act = lambda m: next(v for k, v in m.parts().items() if "activations" in k)
    assert act(stage_memory(cfg, "sft", "cpu", {**sec, "dtype": "float32"}, shape=qwen)) == 24*(keep + 2*drop)*t*4 + 2*h*t*4
    assert act(stage_memory(cfg, "sft", "cuda-a10g", {**sec, "dtype": "bfloat16"}, shape=qwen)) == 24*((keep + drop)*2 + drop)*t + 2*h*t*2


def test_four_bit_and_checkpointing_lower_the_peak(qwen):
    lin = qwen.linear_params                                                  # NF4 linear layers; embeddings and norms stay bf16
    assert weight_bytes(qwen, "bfloat16", four_bit=True) == lin*(0.5 + 4/64) + (qwen.params - lin)*2 < weight_bytes(qwen, "bfloat16")
    assert activation_bytes(qwen, 4, 1024, "bfloat16", True) < activation_bytes(qwen, 4, 1024, "bfloat16", False)/10
    cfg = load_config("qwen2.5-1.5b")[0]
    base = stage_memory(cfg, "sft", "cuda-a10g", section={"batch_size": 4, "max_length": 1024, "gradient_checkpointing": False})
    gc = stage_memory(cfg, "sft", "cuda-a10g", section={"batch_size": 4, "max_length": 1024, "gradient_checkpointing": True})
    q = stage_memory(cfg, "sft", "cuda-a10g", section={"batch_size": 4, "max_length": 1024, "gradient_checkpointing": True, "load_in_4bit": True})
    assert q.peak < gc.peak < base.peak
    assert stage_memory(cfg, "sft", "mps", section={"load_in_4bit": True}).settings["load_in_4bit"] is False   # 4-bit is CUDA only


@pytest.mark.parametrize("preset", REAL)
def test_presets_load_and_plan_offline(preset, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = load_config(preset)[0]
    assert cfg.constitution and cfg.prompts                                   # read from the top by every stage
    p = plan(preset, "ml.p4de.24xlarge")
    assert p.ok and p.gpus == 8 and p.gpu_memory_gb == 80 and len(p.rows) == len(cfg.stages)
    assert all(r["wall_s"] is None for r in p.rows) and "not measured" in str(p)   # no GPU throughput measured: no time guessed


def test_qwen_fits_a_g5_and_llama_is_refused_with_the_field_that_fits(capsys):
    assert main(["plan", "qwen2.5-1.5b", "--instance", "ml.g5.2xlarge"]) == 0
    assert main(["plan", "llama3.1-8b", "--instance", "ml.g5.2xlarge"]) == 1
    err = capsys.readouterr().err
    assert "sft does not fit" in err and "set sft.batch_size: 2" in err
    p = plan("llama3.1-8b", "ml.g5.2xlarge")
    for r in p.rows:                                                          # every suggested change does fit when applied
        if r["fits"] is False:
            assert r["fix"] and r["fix"][1] <= p.limit


def test_bad_input_exits_2(capsys):
    assert main(["plan", "demo", "--gpu-memory", "lots"]) == 2
    assert "--gpu-memory 'lots'" in capsys.readouterr().err
    assert main(["plan", "demo", "--instance", "ml.nope"]) == 2
    assert main(["plan", "demo", "--gpu-memory", "16GB"]) == 0
    assert parse_memory("16GB") == 16 and parse_memory("80") == 80
    with pytest.raises(ConfigError): parse_memory("-3GB")
