import numpy as np
import pandas as pd
import pytest

from helpers import DIALOGSUM, LAB2_CSV
from summarizer.data import dialogue_id, load_local_splits
from summarizer.scoring import (bootstrap_ci, compare_systems, paired_bootstrap, rouge_f1, score_bleu,
                                score_dialogues, split_sentences)


def test_split_sentences():
    assert split_sentences("A went home. B stayed! Did C? yes") == "A went home.\nB stayed!\nDid C?\nyes"


def test_rouge_by_hand():
    # prediction "the cat sat" vs reference "the cat ran": 2 of 3 unigrams match (P = R = F = 2/3),
    # bigrams: "the cat" of 2 → 1/2; LCS "the cat" → 2/3.
    s = rouge_f1("the cat sat", "the cat ran")
    assert s["rouge1"] == pytest.approx(2 / 3)
    assert s["rouge2"] == pytest.approx(1 / 2)
    assert s["rougeL"] == pytest.approx(2 / 3)
    assert rouge_f1("", "the cat")["rouge1"] == 0


def test_both_protocols_by_hand():
    # Dialogue d1 has 2 references; its prediction matches the first exactly and shares nothing with the second.
    # Dialogue d2 has 1 reference, with ROUGE-1 2/3 (above).
    s = score_dialogues(["d1", "d1", "d2"], ["a b", "a b", "the cat sat"], ["a b", "x y", "the cat ran"])
    assert s.dialogue_ids == ["d1", "d2"]
    assert s.per_reference["rouge1"].tolist() == pytest.approx([0.5, 2 / 3])
    assert s.best_of_refs["rouge1"].tolist() == pytest.approx([1.0, 2 / 3])
    # per_reference averages rows (the course's protocol): (1 + 0 + 2/3) / 3; the CI machinery weights by rows.
    assert bootstrap_ci(s.per_reference["rouge1"], weights=s.rows)["mean"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    # best_of_refs averages dialogues: (1 + 2/3) / 2
    assert bootstrap_ci(s.best_of_refs["rouge1"])["mean"] == pytest.approx((1 + 2 / 3) / 2)


def test_best_of_refs_uses_the_first_rows_prediction():
    s = score_dialogues(["d", "d"], ["a b", "x y"], ["a b", "x y"])
    assert s.per_reference["rouge1"][0] == pytest.approx(1.0)  # each row against its own reference
    assert s.best_of_refs["rouge1"][0] == pytest.approx(1.0)   # "a b" vs best of both references


def test_bleu_multi_reference():
    assert score_bleu(["the cat sat on the mat"], [["the cat sat on the mat", "x"]]) == pytest.approx(100.0)
    assert score_bleu(["completely different words here"], [["the cat sat on the mat"]]) < 5
    # a dialogue with fewer references than the others is allowed
    assert 0 < score_bleu(["the cat sat on a mat", "a dog ran off"],
                          [["the cat sat on the mat", "a cat sat"], ["a dog ran off quickly"]]) < 100


def test_bootstrap_ci_contains_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.uniform(size=50), rng.uniform(size=5000)
    a, b = bootstrap_ci(small, seed=1), bootstrap_ci(large, seed=1)
    for ci in (a, b):
        assert ci["ci_low"] < ci["mean"] < ci["ci_high"]
    assert (b["ci_high"] - b["ci_low"]) < (a["ci_high"] - a["ci_low"]) / 5
    assert bootstrap_ci(small, seed=1) == a  # seeded


def test_holm_matches_the_textbook_step_down():
    """Holm (1979): sorted p times (m, m-1, ..., 1), made monotone, capped at 1; in the input's order."""
    from summarizer.scoring import holm

    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([]) == [] and holm([0.2]) == [0.2]
    with pytest.raises(ValueError, match="NaN"):
        holm([0.01, float("nan")])


def test_paired_bootstrap_identical_systems():
    x = np.random.default_rng(1).uniform(size=200)
    r = paired_bootstrap(x, x)
    assert r["difference"] == 0 and r["p_value"] == pytest.approx(1.0)


def test_paired_bootstrap_detects_a_real_difference():
    rng = np.random.default_rng(2)
    b = rng.uniform(size=300)
    r = paired_bootstrap(b + 0.05 + rng.normal(0, 0.02, size=300), b)
    assert r["difference"] == pytest.approx(0.05, abs=0.01)
    assert r["ci_low"] > 0 and r["p_value"] < 0.01
    noise = paired_bootstrap(b + rng.normal(0, 0.05, size=300), b)
    assert noise["p_value"] > 0.05


def test_compare_systems_shape():
    s = score_dialogues(["d1", "d2", "d3"], ["a b", "c d", "e f"], ["a b", "c x", "y z"])
    r = compare_systems(s, s, resamples=200, confidence=0.95, seed=0)
    assert set(r) == {"per_reference", "best_of_refs"}
    assert r["per_reference"]["rouge1"]["p_value"] == 1.0


# The README of ../shared/data/lab2-outputs, rouge_score 0.1.2, use_stemmer=True, mean F1: R1 / R2 / RL.
PUBLISHED = {
    "original_model_summaries": {"per_reference": (0.2333, 0.0761, 0.2015), "best_of_refs": (0.2932, 0.1194, 0.2553)},
    "instruct_model_summaries": {"per_reference": (0.4214, 0.1803, 0.3384), "best_of_refs": (0.4942, 0.2569, 0.4103)},
    "peft_model_summaries": {"per_reference": (0.4081, 0.1635, 0.3251), "best_of_refs": (0.4790, 0.2359, 0.3955)},
}


def test_the_report_quotes_the_published_figures():
    """README's course rows (summarizer.report.COURSE_RESULTS) are these files' per_reference ROUGE-1 / ROUGE-L."""
    from summarizer.report import COURSE_RESULTS

    assert [(r1, rl) for _, r1, rl in COURSE_RESULTS] == [
        (PUBLISHED[k]["per_reference"][0], PUBLISHED[k]["per_reference"][2])
        for k in ("original_model_summaries", "instruct_model_summaries", "peft_model_summaries")]


@pytest.mark.slow  # the published outputs on the whole test split
@pytest.mark.skipif(not LAB2_CSV.exists() or not DIALOGSUM.is_dir(), reason="../shared/data is not available")
@pytest.mark.parametrize("column", list(PUBLISHED))
def test_parity_with_published_scores(column):
    df = pd.read_csv(LAB2_CSV, keep_default_na=False)
    test = load_local_splits(DIALOGSUM)["test"]
    assert df["human_baseline_summaries"].tolist() == [r["summary"] for r in test]
    s = score_dialogues([dialogue_id(r["id"]) for r in test], df[column].tolist(), df["human_baseline_summaries"])
    for protocol, expected in PUBLISHED[column].items():
        w = s.weights(protocol)
        got = [bootstrap_ci(s.protocol(protocol)[k], weights=w, resamples=100)["mean"]
               for k in ("rouge1", "rouge2", "rougeL")]
        assert got == pytest.approx(expected, abs=5e-4), (protocol, got)
