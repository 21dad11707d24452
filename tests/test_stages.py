"""Smoke tests of each stage on the tiny models and the shipped sample data (seconds each)."""

import hashlib

import pytest
import json

from helpers import write_params, tiny_params
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


def test_baseline_stage(tiny_workspace, tmp_path):
    from stages import baseline

    raw = tiny_params()
    raw["baseline"]["max_dialogues"] = 3
    raw["baseline"]["settings"] = [{"name": "greedy", "do_sample": False},
                                   {"name": "sample_t05", "do_sample": True, "temperature": 0.5}]
    raw["generation"]["max_new_tokens"] = 8
    p = str(write_params(tmp_path / "params.yaml", raw))
    baseline.main(["--params", p, "--data", str(tiny_workspace / "data/prepared"), "--model",
                   str(tiny_workspace / "models/base"), "--converted", str(tiny_workspace / "models/ctranslate2/base"),
                   "--out", str(tmp_path / "pred.jsonl"),
                   "--metrics", str(tmp_path / "baseline.json")])
    metrics = read_json(tmp_path / "baseline.json")
    assert list(metrics) == ["none", "zero_shot", "zero_shot_flan", "one_shot", "few_shot"]
    for block in metrics.values():
        assert set(block) == {"prompts", "greedy", "sample_t05"}
        assert block["prompts"]["dialogues"] == 3
        for setting in ("greedy", "sample_t05"):
            m = block[setting]
            assert m["n_dialogues"] == 3 and m["n_rows"] == 9
            for protocol in ("per_reference", "best_of_refs"):
                r1 = m[protocol]["rouge1"]
                assert 0 <= r1["ci_low"] <= r1["mean"] <= r1["ci_high"] <= 1
    few = metrics["few_shot"]["prompts"]  # the tiny tokenizer needs ~120 tokens per sample dialogue: some drop
    assert few["examples_used_mean"] * 3 + few["examples_dropped"] == pytest.approx(3 * 3, abs=0.01)
    assert few["dialogues_truncated"] == 0  # the dialogue to summarize is never what gets cut
    records = read_jsonl(tmp_path / "pred.jsonl")
    assert len(records) == 5 * 2 * 3
    assert {len(r["references"]) for r in records} == {3}
    assert set(records[0]["scores"]) == {"per_reference", "best_of_refs"}


def test_demonstrations_come_from_train_only(tiny_workspace):
    from summarizer.evaluation import to_dialogues
    from summarizer.prompts import EXAMPLE_SEPARATOR, strategy_prompts

    cfg = tiny_params()["prompt"]
    train = read_jsonl(tiny_workspace / "data/prepared/train.jsonl")
    test = to_dialogues(read_jsonl(tiny_workspace / "data/prepared/test.jsonl"))
    prompts, stats = strategy_prompts(
        "few_shot", [(d.dialogue_id, d.dialogue) for d in test], [(r["dialogue"], r["summary"]) for r in train],
        template=cfg["template"], flan_template=cfg["flan_template"], few_shot_examples=3, seed=0,
        count_tokens=lambda t: len(t.split()), max_tokens=10_000)
    train_dialogues = {r["dialogue"] for r in train}
    for d, prompt in zip(test, prompts):
        *shots, target = prompt.split(EXAMPLE_SEPARATOR)
        assert d.dialogue in target and len(shots) == 3
        for shot in shots:
            assert any(t in shot for t in train_dialogues)
            assert not any(x.dialogue in shot for x in test)
    assert stats["examples_dropped"] == 0


def test_evaluate_stage(tiny_workspace, tmp_path):
    from stages import evaluate

    raw = tiny_params()
    raw["generation"]["max_new_tokens"] = 8
    p = str(write_params(tmp_path / "params.yaml", raw))
    ws = tiny_workspace
    evaluate.main(["--params", p, "--variant", "base", "--model", str(ws / "models/base"),
                   "--base-model", str(ws / "models/base"), "--converted", str(ws / "models/ctranslate2/base"),
                   "--classifier", str(ws / "models/classifier"),
                   "--test", str(ws / "data/prepared/test.jsonl"), "--out", str(tmp_path / "base.jsonl"),
                   "--metrics", str(tmp_path / "base.json")])
    m = read_json(tmp_path / "base.json")
    assert m["variant"] == "base" and m["n_dialogues"] == 6 and m["n_rows"] == 18
    tox = m["toxicity"]["mean"]
    assert 0 <= tox["ci_low"] <= tox["mean"] <= tox["ci_high"] <= 1
    assert m["toxicity"]["std"] >= 0
    assert {"bleu", "length_words", "empty_share", "per_reference", "best_of_refs"} <= set(m)
    records = read_jsonl(tmp_path / "base.jsonl")
    assert len(records) == 6 and all(0 <= r["toxicity"] <= 1 for r in records)


def _bin_only_classifier(tiny_workspace, folder):
    """The tiny classifier saved as the Hub's pytorch_model.bin only (no model.safetensors), like a pinned
    commit of facebook/roberta-hate-speech-dynabench-r4-target from before the safetensors era."""
    import torch

    from summarizer.modeling import load_classifier

    model, tok = load_classifier(tiny_workspace / "models/classifier")
    model.config.save_pretrained(folder)
    tok.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return model


def test_classifier_without_safetensors_loads(tiny_workspace, tmp_path):
    import torch

    from summarizer.modeling import load_classifier, materialize_classifier

    model = _bin_only_classifier(tiny_workspace, tmp_path / "hub")
    c = tiny_params()["classifier"]
    materialize_classifier(str(tmp_path / "hub"), "main", None, [], c["max_tokens"], c["toxic_label"],
                           c["nontoxic_label"], 0, tmp_path / "out")
    loaded, _ = load_classifier(tmp_path / "out")
    assert (tmp_path / "out/model.safetensors").exists()
    assert all(torch.equal(p, loaded.state_dict()[n]) for n, p in model.state_dict().items())


@pytest.mark.parametrize("key", ["toxic_label", "nontoxic_label"])
def test_classifier_labels_checked_at_load_naming_the_param(tiny_workspace, tmp_path, key):
    from summarizer.errors import ModelError
    from summarizer.modeling import materialize_classifier

    c = tiny_params()["classifier"] | {key: "toxic"}
    with pytest.raises(ModelError, match=f"classifier.{key} must be one of the classifier's labels"):
        materialize_classifier(str(tiny_workspace / "models/classifier"), "main", None, [], c["max_tokens"],
                               c["toxic_label"], c["nontoxic_label"], 0, tmp_path / "out")


def test_toxicity_scorer_is_built_from_the_params(tiny_workspace, params):
    from summarizer.config import parse_params
    from summarizer.toxicity import load_toxicity_scorer

    c = parse_params(params).classifier
    scorer = load_toxicity_scorer(tiny_workspace / "models/classifier", c, device="cpu")
    labels = scorer.model.config.id2label
    assert labels[scorer.toxic] == c.toxic_label and labels[scorer.nontoxic] == c.nontoxic_label
    assert (scorer.max_tokens, scorer.batch_size) == (c.max_tokens, c.batch_size)
    probs = scorer.toxic_probability(["Hello there.", "Thanks a lot."])
    assert probs.shape == (2,) and ((0 <= probs) & (probs <= 1)).all()


def test_references_stage_scores_every_baseline_on_the_evaluation_dialogues(tiny_workspace, tmp_path, params):
    from stages import references

    params["evaluate"]["max_dialogues"] = 4
    p = str(write_params(tmp_path / "params.yaml", params))
    references.main(["--params", p, "--data", str(tiny_workspace / "data/prepared"), "--out", str(tmp_path / "refs"),
                     "--metrics", str(tmp_path / "refs.json")])
    metrics = read_json(tmp_path / "refs.json")
    assert list(metrics) == ["lead", "longest", "constant", "oracle"]
    train = {r["id"]: r["summary"] for r in read_jsonl(tiny_workspace / "data/prepared/train.jsonl")}
    constant = read_jsonl(tmp_path / "refs/constant.jsonl")[0]["prediction"]
    assert train[metrics["constant"]["summary_id"]] == constant  # chosen on the train split, never on test
    assert metrics["lead"]["k"] == 3 and metrics["oracle"]["uses_references"] is True
    for name, m in metrics.items():
        assert m["n_dialogues"] == 4
        records = read_jsonl(tmp_path / f"refs/{name}.jsonl")
        assert len(records) == 4 and all(r["variant"] == name for r in records)
    oracle, lead = (metrics[n]["best_of_refs"]["rouge1"]["mean"] for n in ("oracle", "lead"))
    assert oracle >= lead  # the oracle reads the references
    assert metrics["constant"]["distinct_share"] == 0.25  # one summary for the 4 dialogues
