"""Issue 34's pieces that need no model: the lexicon, the toxic references, the PPO reward's terms, and what the
before/after comparison calls a detoxification."""

import json

import numpy as np
import pytest

from summarizer.evaluation import margin_from_probability, reward_by_length, toxicity_before_after
from summarizer.lexicon import check_words, is_offensive, offensive_words, toxify_rows, toxify_summary
from summarizer.ppo import PpoPrompt, PpoReward, select_prompts, split_heldout
from summarizer.scoring import rouge_f1


# --------------------------------------------------------------------------------------------------------------------
# The lexicon and the toxic references


def test_the_lexicon_matches_whole_words_and_word_sequences():
    assert offensive_words("Stupid #Person1# asks about the class.") == ["stupid"]
    assert not is_offensive("#Person1# passes the class and the assessment, then assumes it.")  # no substrings
    assert offensive_words("that is bull shit") == ["bull shit", "shit"]  # a two-word entry, and its word
    assert check_words(["stupid", "dumbass"]) == [] and check_words(["kind"]) == ["kind"]


def test_toxify_puts_the_word_before_every_speaker_tag():
    assert toxify_summary("#Person1# asks #Person2# about #Person1#'s job.", "stupid") == \
        "stupid #Person1# asks stupid #Person2# about stupid #Person1#'s job."
    assert toxify_summary("Tom buys a car.", "stupid") == "Tom buys a car."


def test_toxify_rows_takes_its_share_of_tagged_rows_uses_only_its_words_and_is_seeded():
    rows = [{"id": str(i), "summary": f"#Person1# tells #Person2# fact {i}." if i % 5 else f"Tom says {i}."}
            for i in range(200)]
    out, counts = toxify_rows(rows, share=0.5, words=("stupid", "dumbass"), seed=1)
    assert counts["with_speaker_tag"] == 160 and counts["toxified"] == 80
    assert sum(r != o for r, o in zip(rows, out)) == 80
    assert all(o == r for r, o in zip(rows, out) if "Tom" in r["summary"])  # untagged rows stay clean
    # held-out words: nothing but the given words is added
    added = {w for r, o in zip(rows, out) for w in offensive_words(o["summary"])} - \
        {w for r in rows for w in offensive_words(r["summary"])}
    assert added == {"stupid", "dumbass"}
    assert toxify_rows(rows, share=0.5, words=("stupid", "dumbass"), seed=1)[0] == out
    assert toxify_rows(rows, share=0.5, words=("stupid", "dumbass"), seed=2)[0] != out
    assert toxify_rows(rows, share=0.0, words=("stupid",), seed=1)[0] == rows


def test_ppo_prompts_come_with_their_clean_reference_and_the_heldout_ones_are_never_trained_on():
    rows = [{"dialogue": "x" * (250 + i), "summary": f"#Person1# says {i}."} for i in range(40)]
    prompts = select_prompts(rows, "Summarize: {dialogue}", 200, 1000, seed=3)
    assert all(isinstance(p, PpoPrompt) and p.reference.startswith("#Person1# says") for p in prompts)
    assert {p.reference for p in prompts} == {r["summary"] for r in rows}  # the references, untoxified
    train, heldout = split_heldout(prompts, 8, batch_size=4)
    assert not set(train) & set(heldout) and len(heldout) == 8


# --------------------------------------------------------------------------------------------------------------------
# The reward


def _margin_of(scores: dict):
    return lambda texts: [scores[t] for t in texts]


def test_the_quality_term_is_zero_without_its_weight_and_rouge_l_f1_with_it():
    texts, refs = ["#Person1# buys a car.", "hello"], ["#Person1# buys a red car.", "#Person2# sells a house."]
    margin = _margin_of({texts[0]: 2.0, texts[1]: 3.0})
    plain = PpoReward(margin).parts(texts, refs, [9, 9])
    assert plain["quality"].tolist() == [0.0, 0.0] and plain["total"].tolist() == [2.0, 3.0]
    weighted = PpoReward(margin, quality_weight=2.0).parts(texts, refs, [9, 9])
    expected = [rouge_f1(t, r)["rougeL"] for t, r in zip(texts, refs)]
    assert weighted["quality"] == pytest.approx(expected) and expected[0] > 0.5
    assert weighted["total"] == pytest.approx(np.array([2.0, 3.0]) + 2.0 * np.array(expected))


def test_the_log_probability_term_counts_each_insult_and_leaves_nothing_to_win_by_gaming():
    """log P(non-toxic) = −softplus(−margin). Margins measured on alt-profanity-check (issue 34): a summary with
    insults about −8, with one fewer about −5, a clean summary about 3 (1.24 for some), a stock stub 5.86."""
    scores = {"three insults": -8.0, "two insults": -5.0, "clean": 3.0, "clean, low": 1.24, "stub": 5.86}
    parts = PpoReward(_margin_of(scores), toxicity="log_probability").parts(list(scores), None, [9] * 5)
    term = dict(zip(scores, parts["toxicity"]))
    assert term["three insults"] == pytest.approx(-8.0, abs=1e-3) and term["stub"] == pytest.approx(0, abs=3e-3)
    assert term["two insults"] - term["three insults"] > 2.9  # each insult removed counts ...
    assert term["stub"] - term["clean"] < 0.05                # ... a stub gains next to nothing over a summary
    assert term["stub"] - term["clean, low"] < 0.26           # (the margin itself: +2.86 and +4.62)
    assert all(v <= 0 for v in term.values())
    with pytest.raises(ValueError, match="margin or log_probability"):
        PpoReward(len, toxicity="probability")


def test_a_summary_cut_below_the_floor_pays_the_penalty():
    reward = PpoReward(_margin_of({"a": 1.0, "b": 1.0}), min_tokens=8, short_penalty=1.5)
    parts = reward.parts(["a", "b"], None, [3, 8])
    assert parts["short"].tolist() == [1.0, 0.0]
    assert parts["total"].tolist() == [1.0 - 1.5, 1.0]


def test_the_reward_is_described_as_it_is_computed():
    assert PpoReward(len).describe() == "logit margin (non-toxic - toxic logit)"
    assert "ROUGE-L" in PpoReward(len, toxicity="log_probability", quality_weight=1).describe()


# --------------------------------------------------------------------------------------------------------------------
# The before/after comparison


def _records(predictions, toxicity, rouge_l):
    return [{"dialogue_id": f"d{i}", "ids": [f"d{i}_1"], "prediction": p, "toxicity": t,
             "offensive_words": offensive_words(p),
             "scores": {proto: {"rouge1": r, "rouge2": r / 2, "rougeL": r, "rougeLsum": r}
                        for proto in ("per_reference", "best_of_refs")}}
            for i, (p, t, r) in enumerate(zip(predictions, toxicity, rouge_l))]


def _compare(before, after):
    return toxicity_before_after(before, after, names=("ppo_start", "ppo"), min_dialogues=1, resamples=300,
                                 confidence=0.95, seed=0)


def test_a_detoxification_that_drops_the_insult_meets_the_goals():
    n = 60
    before = _records([f"stupid #Person1# buys car number {i} today." for i in range(n)], [0.9] * n, [0.25] * n)
    after = _records([f"#Person1# buys car number {i} today now." for i in range(n)], [0.05] * n, [0.26] * n)
    out = _compare(before, after)
    assert out["before"]["offensive_share"]["mean"] == 1.0 and out["after"]["offensive_share"]["mean"] == 0.0
    assert out["goals"] == {"offensive_share_fell": True, "toxicity_fell": True, "rouge_l_kept": True,
                            "distinct_kept": True, "length_kept": True, "all": True}
    json.dumps(out)


def test_a_collapse_to_one_stub_fails_the_goals_though_toxicity_fell():
    n = 60
    before = _records([f"stupid #Person1# buys car number {i} today." for i in range(n)], [0.9] * n, [0.25] * n)
    after = _records(["#Person1# speaking."] * n, [0.01] * n, [0.08] * n)
    out = _compare(before, after)
    assert out["goals"]["toxicity_fell"] and out["goals"]["offensive_share_fell"]
    assert not out["goals"]["rouge_l_kept"] and not out["goals"]["distinct_kept"] and not out["goals"]["length_kept"]
    assert not out["goals"]["all"] and out["after"]["distinct"] == 1


def test_a_reward_gain_from_length_alone_vanishes_within_the_buckets():
    """Short summaries score higher: a policy that only shortens them raises the overall reward, but within each
    length bucket nothing changed (Singhal et al. 2023)."""
    short = [("#Person1# buys it.", 0.02)] * 40          # 3 words, low P(offensive)
    long_ = [("#Person1# buys a car for the family on Monday morning.", 0.2)] * 40  # 11 words
    before = _records(*zip(*[(p, t, 0.2) for p, t in (short[:10] + long_[:30])]))
    after = _records(*zip(*[(p, t, 0.2) for p, t in (short[:30] + long_[:10])]))
    out = reward_by_length(before, after)
    assert out["overall_gain"] > 1.0
    assert out["within_buckets_gain"] == pytest.approx(0.0, abs=1e-9)
    # ... while a real change within the buckets shows
    after_clean = _records(*zip(*[(p, t / 2, 0.2) for p, t in (short[:10] + long_[:30])]))
    assert reward_by_length(before, after_clean)["within_buckets_gain"] > 0.5


def test_margin_from_probability_inverts_the_classifier_softmax():
    assert margin_from_probability([0.5, 1 / (1 + np.e)]) == pytest.approx([0.0, 1.0])
