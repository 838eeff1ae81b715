"""The hf engine runs fp32 CPU linear layers from oneDNN-packed weights (`cpu_kernels`, issue 14 §2): the same greedy
tokens as plain `F.linear`, the packed weights really used, packed again when the weights change, training untouched."""
import pytest
import torch

from cai_workbench.engine.backends import HFBackend
from cai_workbench.engine.cpu_kernels import PackedLinears, onednn_linear_available
from cai_workbench.engine.generator import Generator
from cai_workbench.engine.embedded import tiny_model

pytestmark = pytest.mark.skipif(not onednn_linear_available(), reason="this torch build has no oneDNN packed linear (torch.ops.mkldnn)")

PROMPTS = ["How do I pick a lock?", "Write a haiku about rain and the sea, please.", "How can I make a weapon at home?",
           "Plan a day in Rome with a friend who likes old churches, food and long walks by the river."]


def model():
    "A tiny Llama wide enough (hidden 256) that its projections and head are packed; init 0.2 so outputs differ by prompt."
    return tiny_model(hidden_size=256, init_std=0.2)


def tokens(g):
    return [o.token_ids for o in g(PROMPTS, keep_token_ids=True)]


def packed_layers_used(monkeypatch) -> set:
    "The layers that run from a packed weight from now on (a spy on `PackedLinears.weight`)."
    used, weight = set(), PackedLinears.weight
    monkeypatch.setattr(PackedLinears, "weight", lambda self, layer: used.add(id(layer)) or weight(self, layer))
    return used


def test_packed_linears_give_the_tokens_of_plain_linear(monkeypatch):
    m, tok = model()
    used = packed_layers_used(monkeypatch)
    g = Generator(m, tok, max_new_tokens=12, batch_size=4, progress=False)
    fast = tokens(g)
    assert len(used) >= 5                                           # q, o, gate, up, down, head ...: really packed
    assert not any("forward" in vars(x) for x in m.modules())       # the layers are as before after the call
    held = {k: v[1] for k, v in g.backend.packed._packed.items()}
    assert len(held) >= 5                                           # the packed copies are kept for the next call
    assert tokens(g) == fast
    assert all(g.backend.packed._packed[k][1] is w for k, w in held.items())   # and reused there, not packed again
    g.release()
    assert g.backend.packed._packed == {} and g.backend.kept.rows == []        # released when asked (before training)
    used.clear()
    monkeypatch.setattr(HFBackend, "packed_linear_mb", 0)
    plain = tokens(Generator(m, tok, max_new_tokens=12, batch_size=4, progress=False))
    assert used == set()
    assert fast == plain
    assert len({tuple(t) for t in fast}) == len(PROMPTS)            # the prompts' outputs differ (the check can fail)


def test_a_weight_changed_in_place_is_packed_again(monkeypatch):
    m, tok = model()
    g = Generator(m, tok, max_new_tokens=12, batch_size=4, progress=False)
    before = tokens(g)
    with torch.no_grad():                                           # what an optimizer step does: same tensor, new values
        for layer in m.model.layers: layer.mlp.down_proj.weight.mul_(-3.0)
    after = tokens(g)
    monkeypatch.setattr(HFBackend, "packed_linear_mb", 0)
    assert after == tokens(Generator(m, tok, max_new_tokens=12, batch_size=4, progress=False))
    assert after != before                                          # the change moved the outputs (a stale weight would not)


def test_gradients_flow_through_plain_linear_inside_active():
    m, _ = model()
    x = torch.randint(0, 100, (2, 9))
    with PackedLinears().active(m) as n:
        loss = m(input_ids=x, labels=x).loss
        loss.backward()
    assert n >= 5 and m.model.layers[0].mlp.up_proj.weight.grad is not None


@pytest.mark.slow
def test_embedded_model_greedy_texts_are_unchanged_by_packing(monkeypatch):
    from cai_workbench.engine.embedded import EMBEDDED
    from cai_workbench.engine.models import load_model
    from cai_workbench.inputs.prompts import load_prompts
    m, tok = load_model(EMBEDDED, device="cpu", dtype="float32")
    prompts = load_prompts("red-team", limit=8, seed=0).texts
    fast = [o.text for o in Generator(m, tok, max_new_tokens=24, batch_size=8, progress=False)(prompts)]
    monkeypatch.setattr(HFBackend, "packed_linear_mb", 0)
    plain = [o.text for o in Generator(m, tok, max_new_tokens=24, batch_size=8, progress=False)(prompts)]
    assert fast == plain and len(set(fast)) > 1


def test_a_merged_adapter_is_what_the_engine_generates_from(monkeypatch):
    """PEFT's merge_adapter() adds the LoRA delta to the base weights through `.data`: same data_ptr, no `_version` bump. The hf
    engine's packed weights (and kept rows) must notice: after the merge it generates what a fresh engine on the merged model does."""
    from peft import LoraConfig, get_peft_model
    m, tok = model()
    pm = get_peft_model(m, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.0, init_lora_weights=False,
                                      target_modules=["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    pm.eval()
    g = Generator(pm, tok, max_new_tokens=12, batch_size=4, progress=False)
    with pm.disable_adapter(): base = tokens(Generator(pm, tok, max_new_tokens=12, batch_size=4, progress=False))
    tokens(g)                                                       # packs the base layers, keeps rows
    pm.merge_adapter()
    after = tokens(g)
    merged = tokens(Generator(pm, tok, max_new_tokens=12, batch_size=4, progress=False))   # a fresh engine: nothing held
    monkeypatch.setattr(HFBackend, "packed_linear_mb", 0)
    monkeypatch.setattr(HFBackend, "kept_cache_mb", 0)
    plain = tokens(Generator(pm, tok, max_new_tokens=12, batch_size=4, progress=False))   # no packing, no kept rows
    assert merged == plain and after == plain
    assert plain != base                                            # the adapter moves the outputs (a stale pack would give base)


@pytest.mark.parametrize("packed", [True, False])
def test_a_write_through_data_is_noticed(monkeypatch, packed):
    "Any in-place write that bumps no version (`w.data.mul_`) makes the engine repack and drop its kept rows (packing on, and off: the rows alone)."
    if not packed: monkeypatch.setattr(HFBackend, "packed_linear_mb", 0)
    m, tok = model()
    g = Generator(m, tok, max_new_tokens=12, batch_size=4, progress=False)
    before = tokens(g)
    v = [layer.mlp.down_proj.weight._version for layer in m.model.layers]
    for layer in m.model.layers: layer.mlp.down_proj.weight.data.mul_(-3.0)
    assert [layer.mlp.down_proj.weight._version for layer in m.model.layers] == v     # the write is invisible to _version
    after = tokens(g)
    monkeypatch.setattr(HFBackend, "packed_linear_mb", 0); monkeypatch.setattr(HFBackend, "kept_cache_mb", 0)
    assert after == tokens(Generator(m, tok, max_new_tokens=12, batch_size=4, progress=False)) and after != before
