"Generator: the stop at EOS (token ids, token counts, finish_reason), padded batches included."
import pytest
import torch

from cai_workbench.engine.generator import Generator
from cai_workbench.engine.embedded import tiny_model


@pytest.fixture(scope="module")
def model_tok():
    m, t = tiny_model(seed=1, init_std=0.2)
    return m.eval(), t


def test_stop_at_eos_pins_ids_counts_and_reason(model_tok):
    m, tok = model_tok
    prompts = ["Please explain how to bake bread.", "hi"]                  # different lengths: left padding in one batch
    free = Generator(m, tok, batch_size=2, progress=False, max_new_tokens=12, prefix_cache_min_tokens=0)
    first = free.generate(prompts, keep_token_ids=True)
    ids = first[0].token_ids
    assert first[0].finish_reason == "length" and len(ids) == 12 and first[0].completion_tokens == 12
    k = next(i for i in range(3, 12) if ids[i] not in ids[:i] and ids[i] not in first[1].token_ids)   # a token first drawn at step k
    m.generation_config.eos_token_id = [ids[k], tok.eos_token_id]          # make it an EOS: generation must stop right there
    try:
        stop = Generator(m, tok, batch_size=2, progress=False, max_new_tokens=12, prefix_cache_min_tokens=0)
        g, other = stop.generate(prompts, keep_token_ids=True)
    finally:
        m.generation_config.eos_token_id = tok.eos_token_id
    assert g.token_ids == ids[:k + 1] and g.token_ids[-1] == ids[k]       # ends AT the EOS, nothing after it
    assert g.completion_tokens == k + 1 and g.finish_reason == "stop"
    assert g.text == tok.decode(ids[:k], skip_special_tokens=True).strip()
    assert g.prompt_tokens == len(free.encode(prompts[:1])[0])
    assert other.token_ids == first[1].token_ids and other.finish_reason == "length" and other.completion_tokens == 12
    # without keep_token_ids the counts and reason are the same
    g2 = Generator(m, tok, batch_size=2, progress=False, max_new_tokens=12).generate(prompts[:1])[0]
    assert g2.token_ids is None and g2.finish_reason == "length"
