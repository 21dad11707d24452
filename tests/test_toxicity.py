"""The toxicity scorers: the offline alt-profanity-check classifier, and the PPO reward as a logit margin."""

import socket

import numpy as np
import pytest

from summarizer.config import parse_params
from summarizer.toxicity import ProfanityCheckScorer, ToxicityScorer, load_toxicity_scorer

OFFENSIVE = ["You are a stupid idiot and I hate you.", "Shut the fuck up, moron.", "What a worthless piece of shit."]
BENIGN = ["#Person1# and #Person2# talk about the new job.", "Thank you for the lovely dinner.",
          "#Person2# books a table for two at seven."]


@pytest.fixture(scope="module")
def profanity_folder(tmp_path_factory):
    from summarizer.modeling import materialize_classifier

    out = tmp_path_factory.mktemp("cls") / "classifier"
    materialize_classifier("alt-profanity-check", "main", None, [], 512, "offensive", "not_offensive", 0, out)
    return out


def _profanity_params(params):
    params["classifier"] |= {"name": "alt-profanity-check", "toxic_label": "offensive",
                             "nontoxic_label": "not_offensive"}
    return parse_params(params).classifier


def test_profanity_classifier_orders_offensive_above_benign(profanity_folder, params):
    scorer = load_toxicity_scorer(profanity_folder, _profanity_params(params), device="cpu")
    assert isinstance(scorer, ProfanityCheckScorer)
    offensive, benign = scorer.toxic_probability(OFFENSIVE), scorer.toxic_probability(BENIGN)
    assert (offensive > 0.9).all() and (benign < 0.2).all()
    assert offensive.min() > benign.max()
    rewards = scorer.reward(OFFENSIVE + BENIGN)
    assert rewards[3:].min() > rewards[:3].max()  # the reward prefers every benign text to every offensive one


def test_profanity_classifier_needs_no_network(profanity_folder, params, monkeypatch, tmp_path):
    """Materialised and used with every socket refused: its weights come from its wheel, nothing from a hub."""
    from summarizer.modeling import materialize_classifier

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    info = materialize_classifier("alt-profanity-check", "main", None, [], 512, "offensive", "not_offensive", 0,
                                  tmp_path / "c")
    assert info["source"] == "package" and info["revision"] == "1.9.1"
    scorer = load_toxicity_scorer(tmp_path / "c", _profanity_params(params), device="cpu")
    assert scorer.toxic_probability(["fuck off"])[0] > 0.9


def test_profanity_labels_are_checked_naming_the_param(tmp_path):
    from summarizer.errors import ModelError
    from summarizer.modeling import materialize_classifier

    with pytest.raises(ModelError, match="classifier.toxic_label must be one of the classifier's labels"):
        materialize_classifier("alt-profanity-check", "main", None, [], 512, "hate", "not_offensive", 0, tmp_path)


class _FixedLogits(ToxicityScorer):
    def __init__(self, logits):
        self._logits, self.toxic, self.nontoxic = np.asarray(logits, dtype=float), 1, 0

    def logits(self, texts, progress=False):
        return self._logits


def test_reward_is_the_logit_margin_and_moves_with_the_reported_probability():
    """Raising both logits leaves P(toxic) and the reward alone (the old raw non-toxic logit rose); a lower
    P(toxic) always means a higher reward."""
    a = _FixedLogits([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    shifted = _FixedLogits([[7.0, 5.0], [6.0, 6.0], [5.0, 8.0]])
    texts = ["a", "b", "c"]
    np.testing.assert_allclose(a.reward(texts), [2.0, 0.0, -3.0])
    np.testing.assert_allclose(shifted.reward(texts), a.reward(texts))
    np.testing.assert_allclose(shifted.toxic_probability(texts), a.toxic_probability(texts))
    order = np.argsort(a.toxic_probability(texts))
    assert (np.diff(a.reward(texts)[order]) < 0).all()
