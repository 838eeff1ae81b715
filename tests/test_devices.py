"""Device and dtype policy on the machines users run: Apple M2 (MPS), CUDA and CPU. MPS is simulated here (no Mac in
CI): what is checked is the policy the stages read — fp16 inference, fp32 training, no bf16/fp16 mixed-precision flags
for TRL, engines that need no CUDA-only kernels."""
import pytest
import torch

from cai_workbench.core.environment import detect_device


@pytest.fixture
def fake_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)


def test_mps_policy_fp16_inference_fp32_training_no_mixed_precision(fake_mps):
    dev = detect_device()
    assert dev.kind == "mps"
    assert dev.dtype("infer") == torch.float16                 # bf16 is slow or missing on older macOS/M-series
    assert dev.dtype("train") == torch.float32                 # fp16 training without a grad scaler diverges
    assert dev.mixed_precision == "no"                         # TRL's bf16/fp16 flags stay off (they assume CUDA amp)


def test_mps_generation_uses_a_kernel_safe_engine(fake_mps):
    from cai_workbench.engine.backends import DEFAULT_BACKEND
    assert DEFAULT_BACKEND["mps"] == "hf"                      # continuous batching's paged kernels target CUDA


def test_cpu_without_native_bf16_stays_fp32(monkeypatch):
    import cai_workbench.core.environment as env
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(env, "cpu_has_fast_bf16", lambda: False)
    dev = env.detect_device()
    assert dev.kind == "cpu" and dev.dtype("infer") == torch.float32 and dev.dtype("train") == torch.float32
    monkeypatch.setattr(env, "cpu_has_fast_bf16", lambda: True)
    assert env.detect_device().dtype("infer") == torch.bfloat16 and env.detect_device().mixed_precision == "no"
