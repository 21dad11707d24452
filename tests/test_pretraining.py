"""Pretraining the small T5 here: span corruption, denoising, the topic task, and the stage that runs them."""

import random

import pytest
import torch

from helpers import tiny_params, write_params
from summarizer.pretraining import NUM_SENTINELS, pretraining_features, sentinel_tokens, span_corruption

SENTINELS = list(range(1000, 1000 + NUM_SENTINELS))
EOS = 1


def _restore(source, target):
    """Put the spans of the target back where the sentinels of the source are."""
    spans, current = {}, None
    for t in target[:-1]:
        if t in SENTINELS:
            current = t
            spans[current] = []
        else:
            spans[current].append(t)
    out = []
    for t in source[:-1]:
        out += spans[t] if t in SENTINELS else [t]
    return out


@pytest.mark.parametrize("seed", range(5))
def test_span_corruption_hides_spans_the_target_gives_back(seed):
    ids = list(range(10, 210))
    source, target = span_corruption(ids, SENTINELS, EOS, noise_density=0.15, mean_span_length=3.0,
                                     rng=random.Random(seed))
    assert source[-1] == EOS and target[-1] == EOS
    assert _restore(source, target) == ids  # nothing lost, nothing invented, order kept
    masked = len(target) - 1 - sum(t in SENTINELS for t in target)
    assert masked == 30  # 15% of 200
    spans = sum(t in SENTINELS for t in source)
    assert spans == 10 and spans == sum(t in SENTINELS for t in target)  # 30 tokens in spans of mean length 3


def test_span_corruption_is_seeded():
    ids = list(range(10, 110))
    runs = [span_corruption(ids, SENTINELS, EOS, noise_density=0.15, mean_span_length=3.0, rng=random.Random(s))
            for s in (1, 1, 2)]
    assert runs[0] == runs[1] != runs[2]


def test_span_corruption_of_a_short_text():
    source, target = span_corruption([5, 6], SENTINELS, EOS, noise_density=0.15, mean_span_length=3.0,
                                     rng=random.Random(0))
    assert _restore(source, target) == [5, 6] and len(target) == 3


def _tokenizer(rows):
    from summarizer.modeling import train_t5_tokenizer

    words = ["booking What is the topic of the following conversation? Topic:"]
    return train_t5_tokenizer([r["dialogue"] for r in rows] + words, 200, 64, extra_tokens=sentinel_tokens())


def test_denoise_target_is_the_dialogue_its_input_masks(params):
    """BART's text infilling: every masked span is one and the same mask token in the input, the unmasked tokens
    keep their order, and the target is the dialogue itself, cut to denoise_target_tokens."""
    from dataclasses import replace

    from summarizer.config import parse_params

    rows = [{"dialogue": "#Person1#: " + " ".join(f"w{i}" for i in range(60)), "topic": "t", "summary": "s"}]
    tok = _tokenizer(rows)
    mask = tok.convert_tokens_to_ids("<extra_id_0>")
    ids = tok(rows[0]["dialogue"], add_special_tokens=False)["input_ids"]
    pre = replace(parse_params(params).model.pretrain, objectives=("denoise",), denoise_target_tokens=40)
    (f,) = pretraining_features(rows, tok, pre, max_source_tokens=1000, seed=0)
    assert f["objective"] == "denoise"
    assert f["labels"] == ids[:40] + [tok.eos_token_id]
    source = f["input_ids"][:-1]
    kept = [t for t in source if t != mask]
    assert set(source) - set(ids) == {mask} and source.count(mask) >= 2  # several spans, all the same token
    assert len(ids) - len(kept) == round(0.15 * len(ids))
    it = iter(ids)
    assert all(t in it for t in kept)  # the unmasked tokens, in the dialogue's order


def test_denoise_source_tokens_cuts_the_input_to_the_dialogue_start(params):
    """The learning profile's base learns to copy on short windows: the input (not only the target) is the
    dialogue's first denoise_source_tokens tokens, masked; null keeps the whole dialogue up to max_source_tokens."""
    from dataclasses import replace

    from summarizer.config import parse_params

    rows = [{"dialogue": "#Person1#: " + " ".join(f"w{i}" for i in range(60)), "topic": "t", "summary": "s"}]
    tok = _tokenizer(rows)
    mask = tok.convert_tokens_to_ids("<extra_id_0>")
    ids = tok(rows[0]["dialogue"], add_special_tokens=False)["input_ids"]
    assert len(ids) > 60
    base = replace(parse_params(params).model.pretrain, objectives=("denoise",), denoise_target_tokens=20)
    (cut,) = pretraining_features(rows, tok, replace(base, denoise_source_tokens=20), max_source_tokens=1000, seed=0)
    kept = [t for t in cut["input_ids"][:-1] if t != mask]
    assert len(kept) == 20 - round(0.15 * 20) and set(kept) <= set(ids[:20])
    assert cut["labels"] == ids[:20] + [tok.eos_token_id]
    (whole,) = pretraining_features(rows, tok, replace(base, denoise_source_tokens=None), max_source_tokens=1000,
                                    seed=0)
    assert len([t for t in whole["input_ids"][:-1] if t != mask]) == len(ids) - round(0.15 * len(ids))
    (capped,) = pretraining_features(rows, tok, replace(base, denoise_source_tokens=500), max_source_tokens=31,
                                     seed=0)
    assert len([t for t in capped["input_ids"][:-1] if t != mask]) == 30 - round(0.15 * 30)  # never past the cap


def test_features_hold_every_objective_and_no_summary(params):
    from dataclasses import replace

    from summarizer.config import parse_params

    rows = [{"dialogue": f"#Person1#: I want {w} tickets.\n#Person2#: Sure, {w} tickets.", "topic": "booking",
             "summary": "SUMMARY-TEXT never seen"} for w in ("two", "three", "four", "five")]
    tok = _tokenizer(rows)
    assert tok.convert_tokens_to_ids("<extra_id_0>") == 3  # right after <pad>, </s>, <unk>
    assert tok.decode(tok.convert_tokens_to_ids(["<extra_id_0>", "<extra_id_5>"]), skip_special_tokens=True) == ""
    pre = replace(parse_params(params).model.pretrain, objectives=("span_corruption", "denoise", "topic"))
    feats = pretraining_features(rows, tok, pre, max_source_tokens=64, seed=0)
    assert sorted(f["objective"] for f in feats) == ["denoise"] * 4 + ["span_corruption"] * 4 + ["topic"] * 4
    for f in feats:
        text = tok.decode(f["input_ids"] + f["labels"])
        assert "SUMMARY" not in text
        if f["objective"] == "topic":
            assert tok.decode(f["labels"], skip_special_tokens=True) == "booking"
            assert tok.decode(f["input_ids"], skip_special_tokens=True).startswith("What is the topic")
        assert len(f["input_ids"]) <= 64


def test_base_model_stage_pretrains_and_says_so(tmp_path, caplog):
    """model.name pretrain-small-t5 on the sample data, a few steps: the saved base is a trained T5 whose info and
    curve record the pretraining, and a second run gives the same weights (seeded). Four steps teach no copying: the
    gate stops the stage naming the figure (on_low_copy error), or says so loudly and goes on (warn)."""
    from safetensors.torch import load_file

    from stages import base_model, prepare_data
    from summarizer.errors import ModelError
    from summarizer.io import read_json

    raw = tiny_params()
    raw["model"]["name"] = "pretrain-small-t5"
    raw["model"]["pretrain"] |= {"max_steps": 4, "batch_size": 4, "logging_steps": 1, "save_steps": None,
                                 "min_copy_gain": 0.3, "on_low_copy": "error"}
    p = str(write_params(tmp_path / "params.yaml", raw))
    prepare_data.main(["--params", p, "--out", str(tmp_path / "data"), "--metrics", str(tmp_path / "data.json")])

    def run(name: str, params: str) -> None:
        base_model.main(["--params", params, "--train", str(tmp_path / "data/train.jsonl"),
                         "--validation", str(tmp_path / "data/validation.jsonl"), "--out", str(tmp_path / name),
                         "--work", str(tmp_path / f"work_{name}"), "--live", str(tmp_path / f"live_{name}"),
                         "--metrics", str(tmp_path / f"{name}.json")])

    with pytest.raises(ModelError, match=r"has not learned to copy .* copy gain of -?0\.0\d\d < "
                                         r"model\.pretrain\.min_copy_gain 0\.3"):
        run("stopped", p)
    assert not (tmp_path / "stopped.json").exists()  # no metrics for a base the pipeline must not go on with
    raw["model"]["pretrain"]["on_low_copy"] = "warn"
    p = str(write_params(tmp_path / "params.yaml", raw))
    weights = []
    for name in ("a", "b"):
        run(name, p)
        weights.append(load_file(tmp_path / name / "model.safetensors"))
    assert "WARNING: the pretrained base has not learned to copy" in caplog.text
    info = read_json(tmp_path / "a.json")
    assert info["source"] == "pretrained-here" and info["pretraining"]["steps"] == 4
    assert info["pretraining"]["objectives"] == ["denoise", "topic"]
    assert info["copy"]["windows"] == 6 and abs(info["copy"]["copy_gain"]) < 0.1
    assert info["copy"]["min_copy_gain"] == 0.3
    assert (tmp_path / "live_a/plots/metrics/loss.tsv").exists()
    assert not (tmp_path / "work_a").exists()  # features and checkpoints are removed once the model is saved
    assert weights[0].keys() == weights[1].keys()
    assert all((weights[0][k] == weights[1][k]).all() for k in weights[0])


class _Reader(torch.nn.Module):
    """A stand-in seq2seq model whose decoder writes out its input, position by position (a perfect copier), or,
    with ``reads=False``, always the same token whatever it is given (a model that does not read)."""

    def __init__(self, vocab: int, reads: bool):
        super().__init__()
        self.vocab, self.reads = vocab, reads
        self.weight = torch.nn.Parameter(torch.zeros(1))  # a parameter, for the probe's device

    def forward(self, input_ids, attention_mask, labels):
        batch, width = labels.shape
        logits = torch.zeros(batch, width, self.vocab)
        ids = input_ids[:, :width] if self.reads else torch.full((batch, width), 7)
        logits.scatter_(2, ids[..., None], 1.0)
        return type("Out", (), {"logits": logits})()


def test_copy_probe_tells_a_model_that_reads_from_one_that_does_not():
    """The gate's figure: a copier's accuracy given its own window is 1 and its gain is what reading adds (all but
    the tokens the next dialogue's window shares); a model that ignores its input gains exactly 0."""
    from summarizer.pretraining import copy_probe

    rows = [{"dialogue": f"#Person1#: I want {w} tickets for {x}.", "topic": "t", "summary": "s"}
            for w, x in (("two", "Monday"), ("three", "Friday"), ("four", "noon"), ("five", "today"))]
    tok = _tokenizer(rows)
    dialogues = [r["dialogue"] for r in rows]
    copier = copy_probe(_Reader(len(tok), reads=True), tok, dialogues, tokens=12)
    assert copier["copy_accuracy"] == 1.0 and copier["windows"] == 4
    assert 0.2 < copier["copy_gain"] < 1.0  # the windows share "#Person1#: I want", which needs no reading
    blind = copy_probe(_Reader(len(tok), reads=False), tok, dialogues, tokens=12)
    assert blind["copy_gain"] == 0.0 and blind["copy_accuracy"] == blind["copy_accuracy_other"]


def test_gate_passes_a_base_that_reads_and_stops_one_that_does_not_naming_the_figure():
    from summarizer.errors import ModelError
    from summarizer.pretraining import check_copy

    probe = {"tokens": 32, "windows": 200, "copy_accuracy": 0.2, "copy_accuracy_other": 0.15, "copy_gain": 0.05}
    assert check_copy(probe | {"copy_accuracy": 0.9, "copy_gain": 0.75}, 0.3, "error") is None
    assert check_copy(probe, None, "error") is None  # null: measure only
    with pytest.raises(ModelError, match=r"copy gain of 0\.050 < model\.pretrain\.min_copy_gain 0\.3"):
        check_copy(probe, 0.3, "error")
    assert "copy gain of 0.050 < model.pretrain.min_copy_gain 0.3" in check_copy(probe, 0.3, "warn")
