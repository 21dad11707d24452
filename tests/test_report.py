"""The report's words: what it calls significant."""

from summarizer.report import ppo_lines


def _detox(low: float, high: float, p: float) -> dict:
    tox = {"mean": {"mean": 0.05}}
    return {"n_dialogues": 500, "before": {"variant": "ppo_start", "toxicity": tox},
            "after": {"variant": "ppo", "toxicity": tox},
            "difference": {"toxicity": {"difference": (low + high) / 2, "ci_low": low, "ci_high": high,
                                        "p_value": p}}}


def test_a_toxicity_drop_is_significant_only_when_the_test_says_so():
    assert "significant, on 500" in ppo_lines({}, _detox(-0.02, -0.01, 0.001), alpha=0.05)[-1]
    assert "not significant, on 500" in ppo_lines({}, _detox(-0.02, 0.01, 0.4), alpha=0.05)[-1]


def test_one_summary_before_and_after_is_not_called_significant():
    """Two models that each write one sentence for every dialogue: every paired difference is the same, the bootstrap
    gives a zero-width interval and p = 1/(resamples+1), which says nothing (the committed run of 2026-12-02)."""
    line = ppo_lines({}, _detox(-0.0066, -0.0066, 0.001), alpha=0.05)[-1]
    assert ": significant" not in line and "compares two sentences" in line
