"""The report's words: what it calls significant."""

import numpy as np
import pytest

from summarizer.report import ppo_lines


def _records(predictions, toxicity):
    return [{"dialogue_id": f"d{i}", "ids": [f"d{i}_1"], "prediction": p, "toxicity": t,
             "offensive_words": ["stupid"] if "stupid" in p else [],
             "scores": {proto: dict.fromkeys(("rouge1", "rouge2", "rougeL", "rougeLsum"), 0.2)
                        for proto in ("per_reference", "best_of_refs")}}
            for i, (p, t) in enumerate(zip(predictions, toxicity))]


def _detox(before_tox, after_tox, before=None, after=None) -> dict:
    """What compare writes (evaluation.toxicity_before_after), from synthetic prediction records."""
    from summarizer.evaluation import toxicity_before_after

    n = len(before_tox)
    before = before or [f"stupid #Person1# buys car {i} on Monday." for i in range(n)]
    after = after or [f"#Person1# buys car {i} on Monday now." for i in range(n)]
    return toxicity_before_after(_records(before, before_tox), _records(after, after_tox), names=("ppo_start", "ppo"),
                                 min_dialogues=1, resamples=200, confidence=0.95, seed=0)


def test_a_toxicity_drop_is_significant_only_when_the_test_says_so():
    rng = np.random.default_rng(0)
    fell = _detox(list(rng.uniform(0.5, 1, 40)), list(rng.uniform(0, 0.2, 40)))
    assert ", significant)" in ppo_lines({}, fell, alpha=0.05)[-1]
    noise = _detox(list(rng.uniform(0, 1, 40)), list(rng.uniform(0, 1, 40)))
    assert "not significant)" in ppo_lines({}, noise, alpha=0.05)[-1]


def test_one_summary_before_and_after_is_not_called_significant():
    """Two models that each write one sentence for every dialogue: every paired difference is the same, the bootstrap
    gives a zero-width interval and p = 1/(resamples+1), which says nothing (the committed run of 2026-12-02)."""
    line = ppo_lines({}, _detox([0.05] * 40, [0.01] * 40, ["a b c d"] * 40, ["#Person1#:"] * 40), alpha=0.05)[-1]
    assert ", significant" not in line and "no test applies" in line


def test_the_report_judges_ppo_by_the_lexicon_and_the_goals():
    line = ppo_lines({}, _detox([0.9] * 40, [0.05] * 40), alpha=0.05)[-1]
    assert "summaries with a lexicon word 100.0% → 0.0%" in line and "Every goal met" in line
    stub = ppo_lines({}, _detox([0.9] * 40, [0.01] * 40, after=["#Person1# offers"] * 40), alpha=0.05)[-1]
    assert "Goals missed: " in stub and "distinct kept" in stub.split("Goals missed: ")[1]
    assert "distinct summaries 40 → 1" in stub


def _heldout(low: float, high: float) -> dict:
    return {"heldout_reward": {"prompts": 64, "samples_per_prompt": 4, "before": {"mean": 3.0}, "after": {"mean": 3.1},
                               "difference": {"difference": (low + high) / 2, "ci_low": low, "ci_high": high},
                               "response_tokens_before": 17.0, "response_tokens_after": 12.0}}


def test_the_heldout_reward_says_rose_only_when_its_interval_is_above_zero():
    detox = _detox([0.5] * 10, [0.4] * 10)

    def line(low, high):
        return next(l for l in ppo_lines(_heldout(low, high), detox, alpha=0.05) if l.startswith("On 64 prompts"))
    assert "its reward rose: 3.000 → 3.100" in line(0.05, 0.15)
    assert "its reward fell" in line(-0.15, -0.05)
    assert "did not move clearly" in line(-0.05, 0.15)
    assert not any(l.startswith("On 64") for l in ppo_lines({"heldout_reward": None}, detox, 0.05))


def test_a_toxicity_drop_from_shrunken_summaries_says_so():
    """The committed run of 2026-12-02 wrote "#Person1#:" for most dialogues and its toxicity fell "significantly":
    the report must say the summaries shrank."""
    shrunk = ppo_lines({}, _detox([0.5] * 40, [0.01] * 40, after=[f"#Person1# {i}" for i in range(40)]), 0.05)[-1]
    assert "shrank to under half their length" in shrunk and "no evidence of detoxification" in shrunk
    assert "shrank" not in ppo_lines({}, _detox([0.5] * 40, [0.01] * 40), 0.05)[-1]


def test_the_ablation_table_has_a_row_per_run_and_says_which_met_the_goals():
    from summarizer.report import ablation_markdown, ablation_table

    runs = {"course": _detox([0.9] * 40, [0.01] * 40, after=["#Person1# offers"] * 40),
            "both": _detox([0.9] * 40, [0.05] * 40)}
    runs["course"]["ppo"] = {"toxicity_reward": "margin", "quality_weight": 0.0, "fixed_length": False}
    runs["both"]["ppo"] = {"toxicity_reward": "log_probability", "quality_weight": 1.0, "fixed_length": True}
    lines = ablation_markdown({"seed": 42, "runs": runs})
    rows = [l for l in lines if l.startswith("| course") or l.startswith("| both")]
    assert len(rows) == 2 and rows[1].endswith("| all |") and "of 5 |" in rows[0]
    assert "| log probability + 1 ROUGE-L | yes |" in rows[1]
    table = ablation_table({"runs": runs})
    assert set(table["run"]) == {"course", "both"} and "within_buckets_gain" in set(table["measure"])
    assert ablation_markdown({"runs": {}}) == []
    assert not any("Stale" in l for l in ablation_markdown({"runs": runs}, runs["both"]))
    assert any("Stale" in l for l in ablation_markdown({"runs": runs}, runs["course"]))


def test_the_table_calls_a_difference_significant_by_its_holm_adjusted_p():
    """compare writes p_holm (Holm-Bonferroni within the family of every variant x ROUGE metric); a raw p below
    alpha whose adjusted p is not must read "not significant"."""
    from summarizer.report import _paired

    def block(p, p_holm):
        test = {"difference": 0.01, "ci_low": 0.001, "ci_high": 0.02, "p_value": p}
        test |= {} if p_holm is None else {"p_holm": p_holm}
        return {"vs_lead": {"reference": "lead", "full": {"per_reference": {"rougeL": test}}}}

    assert _paired(block(0.01, 0.2), "lead", "full", 0.05).endswith("(not significant)")
    assert _paired(block(0.01, 0.03), "lead", "full", 0.05).endswith("(significant)")
    assert _paired(block(0.01, None), "lead", "full", 0.05).endswith("(significant)")  # older metrics: raw p


def test_the_report_says_whether_the_pretrained_base_reads_its_input():
    from summarizer.report import model_note

    info = {"source": "pretrained-here", "parameters": 1_438_080,
            "pretraining": {"objectives": ["denoise"], "steps": 2400, "train_runtime_s": 250.0},
            "copy": {"tokens": 32, "windows": 200, "copy_accuracy": 0.9841, "copy_accuracy_other": 0.1198,
                     "copy_gain": 0.8642, "min_copy_gain": 0.3}}
    note = model_note(info)
    assert "first 32 tokens it predicts 0.984 of them, 0.120 given another dialogue's (copy gain 0.864, gate 0.3)" \
        in note
    assert "copy gain" not in model_note({k: v for k, v in info.items() if k != "copy"})  # older metrics: no figure


def test_the_running_mean_removes_the_megabatch_zigzag():
    """Logged every 25 steps, length-grouped training alternates long and short halves of 50-batch megabatches
    (3.0, 2.0, 3.0, ...): the mean over the last 50 steps is flat, and follows a real fall."""
    from summarizer.report import loss_table, running_mean

    zigzag = [(s, 3.0 if (s // 25) % 2 else 2.0) for s in range(25, 501, 25)]
    assert running_mean(zigzag)[1:] == [2.5] * (len(zigzag) - 1)
    falling = [(s, 5.0 - s / 100) for s in range(25, 501, 25)]
    means = running_mean(falling)
    assert all(b < a for a, b in zip(means, means[1:]))
    assert running_mean([(1, 9.0), (25, 4.0)]) == [9.0, (9.0 + 4.0 * 24) / 25]  # weighted by the steps covered
    # logged every 30 steps: at step 60 the window (10, 60] holds 20 steps of the first log and 30 of the second
    assert running_mean([(30, 1.0), (60, 2.0)]) == [1.0, pytest.approx((20 * 1.0 + 30 * 2.0) / 50)]
    table = loss_table({"full": {"train": zigzag, "validation": [(400, 2.4)]}})
    assert table[table.split == "validation"]["loss_mean"].isna().all()
