"""The tiny tokenizers: the same vocabulary on every run, and text that survives a round trip."""

import pytest

from helpers import SAMPLE
from summarizer.data import load_local_splits
from summarizer.modeling import train_roberta_tokenizer, train_t5_tokenizer


@pytest.fixture(scope="module")
def texts():
    rows = load_local_splits(SAMPLE)["train"]
    return [r["dialogue"] for r in rows] + [r["summary"] for r in rows]


@pytest.mark.parametrize("train", [train_t5_tokenizer, train_roberta_tokenizer])
def test_tokenizer_training_is_deterministic(texts, train):
    """A Unigram trainer gave a different vocabulary on each run, so every clean rebuild changed the base model's
    hash and every score after it (issue 12, item 4). Five runs in one process, as the hash seeds differ per run."""
    vocabularies = {train(texts, 400, 128).backend_tokenizer.to_str() for _ in range(5)}
    assert len(vocabularies) == 1


def test_t5_tokenizer_round_trip_and_specials(texts):
    tok = train_t5_tokenizer(texts, 400, 128)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    ids = tok(texts[0])["input_ids"]
    assert ids[-1] == 1 and 2 not in ids
    assert tok.decode(ids, skip_special_tokens=True) == texts[0]


def test_attention_param_reaches_the_model(tiny_workspace):
    """model.attention is not ignored: the loaded model runs the implementation asked for (auto: sdpa, the faster
    one measured on a CPU), with the same greedy logits either way."""
    import torch

    from summarizer.modeling import load_summarizer, resolve_attention

    assert resolve_attention("auto", "cpu") == "sdpa" and resolve_attention("eager", "cuda:0") == "eager"
    models = {a: load_summarizer(tiny_workspace / "models/base", attention=a) for a in ("eager", "sdpa", "auto")}
    assert {a: m.config._attn_implementation for a, m in models.items()} == {"eager": "eager", "sdpa": "sdpa",
                                                                             "auto": "sdpa"}
    batch = {"input_ids": torch.tensor([[5, 6, 7, 1]]), "decoder_input_ids": torch.tensor([[0, 5]])}
    with torch.inference_mode():
        eager, sdpa = (models[a](**batch).logits for a in ("eager", "sdpa"))
    assert torch.allclose(eager, sdpa, atol=1e-5)
