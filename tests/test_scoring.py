"The log-prob path: letter tokens of SentencePiece tokenizers."
import pytest
import torch

from cai_workbench.engine.embedded import CHATML_TEMPLATE
from cai_workbench.engine.scoring import completion_logprobs, next_token_logprobs, single_token_ids

PREFIX = "The answer is: ("


@pytest.fixture(scope="module")
def sp_model():
    "A SentencePiece-style (Metaspace, `▁` word prefix) BPE tokenizer trained offline, and a random tiny Llama on its vocab."
    from tokenizers import SentencePieceBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    corpus = ["The answer is: (A) because it is safe.", "The answer is: (B) because A is harmful.", "A cat and B dog.",
              "Which response is better, (A) or (B)? A or B.", "So the answer is: (B)", "hello world (A) (B) A B"] * 20
    sp = SentencePieceBPETokenizer()
    sp.train_from_iterator(corpus, vocab_size=120, min_frequency=1, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=sp._tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>")
    tok.chat_template = CHATML_TEMPLATE
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=2, initializer_range=0.5, pad_token_id=tok.pad_token_id)
    return LlamaForCausalLM(cfg).eval(), tok


def test_sentencepiece_letter_after_prefix_is_the_token_that_follows_it(sp_model):
    model, tok = sp_model
    alone = single_token_ids(tok, ["A", "B"])
    assert tok.convert_ids_to_tokens(alone) == ["▁A", "▁B"]              # the word-initial form: not what follows "("
    ids = single_token_ids(tok, ["A", "B"], prefix=PREFIX)
    assert [tok(PREFIX + c, add_special_tokens=False)["input_ids"][-1] for c in "AB"] == ids
    assert tok.convert_ids_to_tokens(ids) == ["A", "B"]


def test_next_token_logprobs_scores_the_letter_that_follows_the_prefix(sp_model):
    model, tok = sp_model
    # the scored letter is the one the model would produce: log p(prefix+A) - log p(prefix) through the plain path
    prompts = ["Which response is better?", "hello world"]
    lp = next_token_logprobs(model, tok, prompts, ["A", "B"], prefix=PREFIX)
    for j, c in enumerate("AB"):
        want = [a - b for a, b in zip(completion_logprobs(model, tok, prompts, [PREFIX + c]*2), completion_logprobs(model, tok, prompts, [PREFIX]*2))]
        assert lp[:, j].tolist() == pytest.approx(want, abs=1e-4)


def test_letter_merged_into_the_prefix_is_refused(sp_model):
    _, tok = sp_model
    with pytest.raises(ValueError, match="not a single token after 'The answer is: '"):
        single_token_ids(tok, ["(A"], prefix="The answer is: ")           # "(A" is two tokens after the prefix
