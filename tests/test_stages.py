"""Smoke tests of each stage on the tiny models and the shipped sample data (seconds each)."""

import hashlib
import json

from conftest import write_params, tiny_params
from stages import prepare_data, tokenize_data
from summarizer.io import read_json, read_jsonl


def test_prepare_data_outputs(tiny_workspace):
    stats = read_json(tiny_workspace / "metrics/data.json")
    assert stats["rows"] == {"train": 30, "validation": 6, "test": 18}
    assert stats["test_dialogues"] == 6
    assert set(stats["source_sha256"]) == {"train.jsonl", "validation.jsonl", "test.jsonl"}
    test = read_jsonl(tiny_workspace / "data/prepared/test.jsonl")
    assert {r["dialogue_id"] for r in test} == {f"test_{i}" for i in range(6)}


def test_base_models_recorded(tiny_workspace):
    base = read_json(tiny_workspace / "metrics/models/base.json")
    assert base["source"] == "tiny-random" and base["architecture"] == "T5ForConditionalGeneration"
    assert 10_000 < base["parameters"] < 1_000_000
    assert (tiny_workspace / "models/base/model.safetensors").exists()
    cls = read_json(tiny_workspace / "metrics/models/classifier.json")
    config = json.loads((tiny_workspace / "models/classifier/config.json").read_text())
    assert cls["architecture"] == "RobertaForSequenceClassification"
    assert config["id2label"] == {"0": "nothate", "1": "hate"}


def test_tiny_t5_loss_starts_near_uniform(tiny_workspace):
    """A small initializer_factor: the untrained loss sits near ln(vocab), not ~30."""
    import math

    import torch

    from summarizer.modeling import load_summarizer, load_tokenizer

    model = load_summarizer(tiny_workspace / "models/base")
    tok = load_tokenizer(tiny_workspace / "models/base")
    batch = tok(["#Person1#: Hello there."], return_tensors="pt")
    labels = tok(text_target=["They greet."], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        loss = model(**batch, labels=labels).loss.item()
    assert abs(loss - math.log(len(tok))) < 1.0


def _hashes(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_prepare_and_tokenize_are_byte_identical_across_runs(tiny_workspace, tmp_path):
    raw = tiny_params()
    raw["data"]["max_train_samples"] = 20  # exercise the seeded cut too
    p = str(write_params(tmp_path / "params.yaml", raw))
    for run in ("a", "b"):
        out = tmp_path / run
        prepare_data.main(["--params", p, "--out", str(out / "prepared"), "--metrics", str(out / "data.json")])
        tokenize_data.main(["--params", p, "--data", str(out / "prepared"), "--tokenizer",
                            str(tiny_workspace / "models/base"), "--out", str(out / "tokenized"),
                            "--metrics", str(out / "tokenize.json")])
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b")
    assert len(read_jsonl(tmp_path / "a/prepared/train.jsonl")) == 20
