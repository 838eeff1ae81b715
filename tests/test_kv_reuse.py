"""The hf engine's prefill in the critique-revision stage: each revision chat starts from the kept KV cache of its critique
row, prompts are prefilled without padding, and the records are those of plain `generate` (greedy, fp32, tiny model)."""
import json

from cai_workbench.engine.backends import HFBackend
from cai_workbench.core.run import Run
from cai_workbench.stages.critique_revision import CritiqueRevisionConfig, run_critique_revision
from cai_workbench.engine.generator import GenerationConfig, Generator
from cai_workbench.engine.embedded import tiny_model

PROMPTS = ["How do I pick a lock?", "Write a haiku about rain and the sea, please.", "How can I make a weapon at home?",
           "Plan a day in Rome with a friend who likes old churches, food and long walks by the river."]


def stage(tmp_path, name, few_shot=False, **gen):
    "Records of a one-round greedy stage and the token positions the model ran, per step."
    m, tok = tiny_model(init_std=0.2)
    cfg = CritiqueRevisionConfig(prompts="demo", use_few_shot=few_shot, max_few_shot=1, converged_pattern="",
                         generation=GenerationConfig(max_new_tokens=10, batch_size=4, **gen))
    g = Generator(m, tok, cfg.generation, progress=False)
    ran, steps = [], []
    m.model.embed_tokens.register_forward_hook(lambda mod, i, o: ran.append(i[0].numel()))
    gen_call = g.generate
    def spy(*a, **k):
        n = len(ran); out = gen_call(*a, **k); steps.append(sum(ran[n:])); return out
    g.generate = spy
    res = run_critique_revision(Run.create(tmp_path/name), cfg, model=g, prompts=PROMPTS, progress=False)
    return [(r["initial_response"], [(x["critique"], x["revision"]) for x in r["rounds"]]) for r in res.records], steps


def test_revision_reuses_its_critique_row(tmp_path, monkeypatch):
    fast, (_, crit, rev) = stage(tmp_path, "fast")
    monkeypatch.setattr(HFBackend, "kept_cache_mb", 0)
    unkept, (_, crit0, rev0) = stage(tmp_path, "unkept")
    plain, _ = stage(tmp_path, "plain", prefix_cache_min_tokens=0)
    assert fast == unkept == plain                                  # greedy: the same texts whichever way the cache is filled
    assert len({json.dumps(r) for r in fast}) == len(PROMPTS)       # and the prompts' outputs differ (the check can fail)
    assert rev < rev0 / 2, (rev, rev0)                              # the revision step ran under half the tokens
    assert crit < crit0, (crit, crit0)                              # without few-shot the critique chat extends the initial one


def test_revisions_extending_different_critique_rows_prefill_together(tmp_path, monkeypatch):
    calls, fk = [], HFBackend.forward_kv
    def spy(self, starts, seqs, device):
        calls.append(len({(id(r), n) for r, n in starts})); return fk(self, starts, seqs, device)
    monkeypatch.setattr(HFBackend, "forward_kv", spy)
    fast, _ = stage(tmp_path, "fast")
    monkeypatch.setattr(HFBackend, "forward_kv", fk)
    plain, _ = stage(tmp_path, "plain", prefix_cache_min_tokens=0)
    assert fast == plain                                            # greedy: padded starts give the texts of plain generate
    assert max(calls) == len(PROMPTS), calls                        # one forward ran the four revisions from four kept rows


def test_decoding_reads_the_shared_prefix_once_with_the_texts_of_plain_generate(tmp_path, monkeypatch):
    from cai_workbench.engine import cpu_kernels
    seen, da = [], cpu_kernels.decode_attention
    def spy(query, key, value, mask, scale, shared=0):
        seen.append((key.shape[0], shared)); return da(query, key, value, mask, scale, shared)
    monkeypatch.setattr(cpu_kernels, "decode_attention", spy)
    fast, _ = stage(tmp_path, "fast", few_shot=True)
    split = [n for b, n in seen if n]
    assert split and min(split) >= 16, sorted(set(seen))        # critique and revision batches decode with a shared prefix
    monkeypatch.setattr(HFBackend, "fast_cpu_attention", False)
    seen.clear(); unsplit, _ = stage(tmp_path, "unsplit", few_shot=True)
    assert not seen                                              # switched off: transformers' sdpa, left-padded rows
    plain, _ = stage(tmp_path, "plain", few_shot=True, prefix_cache_min_tokens=0)
    assert fast == unsplit == plain                              # greedy: the same texts
    assert len({json.dumps(r) for r in fast}) == len(PROMPTS)
