"""Reference baselines made without a model: what each one picks, and Lead-3 on the real DialogSum."""

import pytest

from helpers import DIALOGSUM
from summarizer.evaluation import Dialogue, evaluate_system, to_dialogues
from summarizer.references import (constant_summary, grams, lead, longest, oracle, reference_summaries, rouge12,
                                   turns)

DIALOGUE = ("#Person1#: Hi.\n#Person2#: Hello, how can I help you with the flight booking today?\n"
            "#Person1#: I need a ticket to Paris.\n\n#Person2#: Sure.\n"
            "#Person1#: A window seat on the morning flight to Paris, please, if there is one left.")


def test_turns_drop_empty_lines():
    assert len(turns(DIALOGUE)) == 5


def test_lead_keeps_the_first_turns():
    assert lead(DIALOGUE, 2) == "#Person1#: Hi.\n#Person2#: Hello, how can I help you with the flight booking today?"


def test_longest_keeps_dialogue_order():
    out = longest(DIALOGUE, 2).split("\n")
    assert out == [turns(DIALOGUE)[1], turns(DIALOGUE)[4]]  # the two longest, spoken in this order


def test_oracle_picks_the_turns_that_match_the_references():
    refs = ["#Person1# books a window seat on the morning flight to Paris."]
    picked = oracle(DIALOGUE, refs)
    assert "window seat on the morning flight" in picked
    assert "Hi." not in picked.split("\n")
    best_single = max(rouge12(grams(t), grams(refs[0])) for t in turns(DIALOGUE))
    assert rouge12(grams(picked), grams(refs[0])) >= best_single  # greedy never ends below its first pick


def test_constant_comes_from_train_and_is_central():
    train = ["#Person1# and #Person2# talk about the weather."] * 3 + [
        "#Person1# and #Person2# talk about a trip.", "#Person2# buys a car.", "A cat sat on a mat.",
        "#Person1# and #Person2# talk about food.", "#Person1# and #Person2# talk about the new job."]
    summary, agreement = constant_summary(train, pool=4, seed=0)
    assert summary in train
    assert summary.startswith("#Person1# and #Person2# talk about")
    assert 0 < agreement <= 1


def test_reference_summaries_one_per_dialogue():
    dialogues = [Dialogue("d1", DIALOGUE, ("d1",), ("#Person1# books a flight.",))] * 2
    for name in ("lead", "longest", "oracle"):
        assert len(reference_summaries(name, dialogues, k=3)) == 2
    assert reference_summaries("constant", dialogues, k=3, constant="x") == ["x", "x"]
    with pytest.raises(ValueError, match="constant"):
        reference_summaries("constant", dialogues, k=3)


@pytest.mark.skipif(not DIALOGSUM.is_dir(), reason="the shared DialogSum is not here")
def test_lead3_and_longest3_on_dialogsum_match_the_published_figures():
    """Lead-3 scores above the course's zero-shot FLAN-T5-base on ROUGE-1 and ROUGE-L: the figure docs/scoring.md and
    params.yaml quote. Longest-3 is DialogSum's own baseline."""
    from summarizer.data import load_local_splits

    dialogues = to_dialogues(load_local_splits(DIALOGSUM)["test"])
    assert len(dialogues) == 500
    ci = dict(resamples=100, confidence=0.95, seed=0)
    expected = {"lead": (0.2695, 0.0671, 0.2039), "longest": (0.2332, 0.0633, 0.1696)}
    for name, figures in expected.items():
        metrics, _ = evaluate_system(dialogues, reference_summaries(name, dialogues, k=3), **ci)
        got = tuple(metrics["per_reference"][k]["mean"] for k in ("rouge1", "rouge2", "rougeL"))
        assert got == pytest.approx(figures, abs=5e-5), name
