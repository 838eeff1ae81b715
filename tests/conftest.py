"Shared pytest fixtures: the reference data beside the checkout, and tiny offline models."
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CAI_WORKBENCH_SHARED_DATA", REPO.parent/"shared"/"data"))


def shared_file(rel: str) -> Path:
    "Path of a file in ../shared/data, or skip the test with the reason."
    p = SHARED_DATA/rel
    if not p.exists():
        pytest.skip(f"reference data {p} is absent (a fresh clone has no ../shared); see shared/data/README.md")
    return p


@pytest.fixture
def shared():
    "Callable: shared('xstest/xstest_prompts.csv') -> Path, skipping when absent."
    return shared_file


@pytest.fixture(scope="session")
def tiny():
    "(model, tokenizer): the tiny random Llama, fp32 on CPU."
    from cai_workbench.engine.models import load_model
    from cai_workbench.engine.embedded import TINY
    return load_model(TINY, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def embedded():
    "(model, tokenizer): the embedded SmolLM2-135M-Instruct in its inference dtype on CPU."
    from cai_workbench.engine.models import load_model
    from cai_workbench.engine.embedded import EMBEDDED
    return load_model(EMBEDDED, device="cpu")
