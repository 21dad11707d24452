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


def _heldout(low: float, high: float) -> dict:
    return {"heldout_reward": {"prompts": 64, "samples_per_prompt": 4, "before": {"mean": 3.0}, "after": {"mean": 3.1},
                               "difference": {"difference": (low + high) / 2, "ci_low": low, "ci_high": high},
                               "response_tokens_before": 17.0, "response_tokens_after": 12.0}}


def test_the_heldout_reward_says_rose_only_when_its_interval_is_above_zero():
    def line(low, high):
        return next(l for l in ppo_lines(_heldout(low, high), _detox(-0.02, 0.01, 0.4), alpha=0.05)
                    if l.startswith("On 64 prompts"))
    assert "its reward rose: 3.000 → 3.100" in line(0.05, 0.15)
    assert "its reward fell" in line(-0.15, -0.05)
    assert "did not move clearly" in line(-0.05, 0.15)
    assert not any(l.startswith("On ") for l in ppo_lines({"heldout_reward": None}, _detox(-0.02, 0.01, 0.4), 0.05))


def test_a_toxicity_drop_from_shrunken_summaries_says_so():
    """The committed run's PPO wrote "#Person1#:" for most dialogues (1.1 words, from 12.0) and its toxicity fell
    "significantly": the report must put the length beside it."""
    shrunk = ppo_lines({}, _detox(-0.02, -0.01, 0.001), 0.05, {"ppo_start": 12.0, "ppo": 1.1})[-1]
    assert "12.0 → 1.1 words: the summaries shrank" in shrunk and "writing less" in shrunk
    kept = ppo_lines({}, _detox(-0.02, -0.01, 0.001), 0.05, {"ppo_start": 12.0, "ppo": 9.0})[-1]
    assert kept.endswith("12.0 → 9.0 words.")
    assert "words" not in ppo_lines({}, _detox(-0.02, -0.01, 0.001), 0.05)[-1]


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
