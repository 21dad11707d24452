"""Comparing systems from prediction records (the compare stage's logic) and the shared helpers it uses."""

import numpy as np
import pytest

from summarizer.scoring import holm
from summarizer.evaluation import compare_variants, toxicity_before_after, toxicity_summary
from summarizer.io import rounded

CI = dict(resamples=200, confidence=0.95, seed=0)


def _records(rouge_l: list[float], toxicity: list[float], rows: int = 1) -> list[dict]:
    scores = {k: v for k, v in (("rouge1", 0.0), ("rouge2", 0.0), ("rougeL", 0.0), ("rougeLsum", 0.0))}
    return [{"dialogue_id": f"d{i}", "ids": [f"d{i}_{j}" for j in range(rows)], "toxicity": t,
             "prediction": f"summary {i}", "offensive_words": [],
             "scores": {p: scores | {"rougeL": r} for p in ("per_reference", "best_of_refs")}}
            for i, (r, t) in enumerate(zip(rouge_l, toxicity))]


def test_rounded_reaches_every_float_and_nothing_else():
    value = {"a": 0.123456789, "b": [1.0000004, 2], "c": {"d": 1e-7, "e": "x", "f": None, "g": True}}
    assert rounded(value) == {"a": 0.123457, "b": [1.0, 2], "c": {"d": 0.0, "e": "x", "f": None, "g": True}}
    assert rounded(12.3456, 2) == 12.35
    assert isinstance(rounded({"n": 3})["n"], int)


def test_toxicity_before_after_measures_the_paired_drop():
    before = _records([0.2] * 40, [0.9] * 20 + [0.7] * 20)
    after = _records([0.2] * 40, [0.4] * 20 + [0.2] * 20)
    out = toxicity_before_after(before, after, names=("lora", "ppo"), min_dialogues=30, **CI)
    assert out["before"]["variant"] == "lora" and out["after"]["variant"] == "ppo"
    assert out["before"]["toxicity"]["mean"]["mean"] == pytest.approx(0.8)
    assert out["after"]["toxicity"]["mean"]["mean"] == pytest.approx(0.3)
    assert out["difference"]["toxicity"]["difference"] == pytest.approx(-0.5)
    assert out["difference"]["toxicity"]["p_value"] < 0.05
    assert out["difference"]["rouge"]["rougeL"]["difference"] == 0.0
    assert out["n_dialogues"] == 40 and out["enough_dialogues"]


def test_toxicity_before_after_refuses_other_dialogues_and_flags_too_few():
    a, b = _records([0.1, 0.2], [0.5, 0.5]), _records([0.1, 0.2], [0.5, 0.5])
    b[0]["dialogue_id"] = "other"
    with pytest.raises(ValueError, match="same dialogues"):
        toxicity_before_after(a, b, names=("x", "y"), min_dialogues=1, **CI)
    out = toxicity_before_after(a, a, names=("x", "x"), min_dialogues=3, **CI)
    assert not out["enough_dialogues"]


def test_toxicity_summary_is_mean_ci_and_std():
    values = np.array([0.1, 0.3, 0.5, 0.7])
    out = toxicity_summary(values, **CI)
    assert out["mean"]["mean"] == pytest.approx(0.4) and out["std"] == pytest.approx(values.std(), abs=1e-6)
    assert out["mean"]["ci_low"] <= 0.4 <= out["mean"]["ci_high"]


def test_compare_variants_pairs_every_variant_with_the_reference():
    records = {"base": _records([0.2] * 30, [0.0] * 30), "lora": _records([0.5] * 30, [0.0] * 30),
               "ppo": _records([0.2] * 30, [0.0] * 30)}
    out = compare_variants(records, "base", **CI)
    assert set(out) == {"reference", "lora", "ppo", "correction"} and out["reference"] == "base"
    assert out["lora"]["per_reference"]["rougeL"]["difference"] == pytest.approx(0.3)
    assert out["ppo"]["per_reference"]["rougeL"]["difference"] == 0.0
    with pytest.raises(ValueError, match="reference 'full' is not among"):
        compare_variants(records, "full", **CI)


def test_compare_variants_adjusts_each_family_with_holm():
    """Every variant x ROUGE metric of one protocol is one family: each test's p_holm is Holm's adjustment of the
    family's p-values, so a difference that is 'significant' alone (p < 0.05) need not be after correction."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.4, 60)
    records = {"base": _records(base.tolist(), [0.0] * 60),
               "big": _records((base + 0.2).tolist(), [0.0] * 60),  # every dialogue better: p at its floor
               "small": _records((base + rng.normal(0.02, 0.1, 60)).tolist(), [0.0] * 60)}  # p about 0.02
    out = compare_variants(records, "base", resamples=2000, confidence=0.95, seed=0)
    assert out["correction"] == {"method": "holm", "family": "every variant x ROUGE metric, per protocol",
                                 "tests_per_family": 8, "resamples": 2000}
    for protocol in ("per_reference", "best_of_refs"):
        tests = [out[v][protocol][k] for v in ("big", "small") for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")]
        assert [t["p_holm"] for t in tests] == pytest.approx(holm([t["p_value"] for t in tests]), abs=1e-6)
    small = out["small"]["per_reference"]["rougeL"]
    assert small["p_value"] < 0.05 <= small["p_holm"]  # significant alone, not among the family's 8 tests
    assert out["big"]["per_reference"]["rougeL"]["p_holm"] < 0.05
