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


def test_attention_initialisation_and_neighbour_heads(texts):
    """The learning profile's init: queries, keys and position biases drawn at their own factor (their spread
    scales with it, nothing else changes), and encoder heads 0 / 1 biased towards the previous / next token."""
    from dataclasses import replace

    import torch

    from summarizer.config import TinyT5Params
    from summarizer.modeling import build_tiny_t5

    tok = train_t5_tokenizer(texts, 300, 64)
    arch = TinyT5Params(300, 32, 64, 2, 4, 8, 0.1, None, None)
    plain = build_tiny_t5(arch, tok, seed=0)
    wide = build_tiny_t5(replace(arch, attention_initializer_factor=1.0), tok, seed=0)
    q, k = "encoder.block.1.layer.0.SelfAttention.q.weight", "decoder.block.0.layer.1.EncDecAttention.k.weight"
    for name in (q, k):
        ratio = wide.get_parameter(name).std() / plain.get_parameter(name).std()
        assert 7 < ratio < 13, (name, ratio)
    v = "encoder.block.0.layer.0.SelfAttention.v.weight"
    assert torch.equal(wide.get_parameter(v), plain.get_parameter(v))  # values, outputs, FFN, embeddings as T5's

    biased = build_tiny_t5(replace(arch, neighbour_bias=4.0), tok, seed=0)
    attention = biased.encoder.block[0].layer[0].SelfAttention
    ids = torch.tensor([tok("#Person1#: a b c d e f g h", add_special_tokens=False)["input_ids"]])
    bias = attention.compute_bias(ids.shape[1], ids.shape[1])[0]  # (heads, query, key)
    n = ids.shape[1]
    previous = bias[0].argmax(-1)[1:]  # head 0: each position's highest bias is the token before it
    following = bias[1].argmax(-1)[:-1]  # head 1: the token after it
    assert previous.tolist() == list(range(n - 1)) and following.tolist() == list(range(1, n))
    assert bias[2:].abs().max() < 1.0  # the other heads keep T5's small random biases

    one_head = build_tiny_t5(replace(arch, num_heads=1, neighbour_bias=4.0), tok, seed=0)
    bias = one_head.encoder.block[0].layer[0].SelfAttention.compute_bias(n, n)[0, 0]
    assert bias.argmax(-1)[1:].tolist() == list(range(n - 1))  # one head: the previous token only, not both


def test_pretraining_dropout_is_not_the_fine_tuning_dropout(tmp_path, monkeypatch):
    """model.pretrain.dropout applies while pretraining; the saved base carries T5's 0.1 for fine-tuning."""
    import json

    import summarizer.pretraining
    from helpers import tiny_params, write_params
    from stages import base_model, prepare_data

    built = []
    build = summarizer.pretraining.build_tiny_t5
    monkeypatch.setattr(summarizer.pretraining, "build_tiny_t5",
                        lambda *a, **kw: built.append(build(*a, **kw)) or built[-1])

    raw = tiny_params()
    raw["model"]["name"] = "pretrain-small-t5"
    raw["model"]["pretrain"] |= {"max_steps": 2, "batch_size": 4, "save_steps": None, "dropout": 0.0,
                                 "on_low_copy": "warn"}
    p = str(write_params(tmp_path / "params.yaml", raw))
    prepare_data.main(["--params", p, "--out", str(tmp_path / "data"), "--metrics", str(tmp_path / "data.json")])
    base_model.main(["--params", p, "--train", str(tmp_path / "data/train.jsonl"),
                     "--validation", str(tmp_path / "data/validation.jsonl"), "--out", str(tmp_path / "base"),
                     "--work", str(tmp_path / "work"), "--live", str(tmp_path / "live"),
                     "--metrics", str(tmp_path / "base.json")])
    assert built[0].config.dropout_rate == 0.0  # the model that was pretrained
    assert json.loads((tmp_path / "base/config.json").read_text())["dropout_rate"] == 0.1
