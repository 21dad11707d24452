"""Scoring: ROUGE and BLEU under two named protocols, lengths, bootstrap CIs and the paired bootstrap test.

Protocols (both always reported):
- ``per_reference``: each row (a dialogue with one of its references) scored against its own reference and
  averaged over rows: the course's protocol, comparable with its published numbers.
- ``best_of_refs``: per dialogue, the best score over all its references, averaged over dialogues.

Confidence intervals resample *dialogues* (a cluster bootstrap): the three rows of one test dialogue share a
prediction, so resampling rows would pretend to have three times the evidence.

ROUGE is ``rouge_score`` (what ``evaluate``'s rouge wraps) with ``use_stemmer=True``; it is not loaded from the Hub.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from summarizer.data import word_count
from summarizer.io import rounded

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
PROTOCOLS = ("per_reference", "best_of_refs")
# A sentence ends at . ! or ? followed by whitespace: nltk's punkt (what HF scripts use) is not available offline.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> str:
    """One sentence per line, as rougeLsum expects."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)


def rouge_f1(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L/Lsum F1 of one prediction against one reference."""
    scores = _rouge_scorer().score(split_sentences(reference), split_sentences(prediction))
    return {k: scores[k].fmeasure for k in ROUGE_KEYS}


# --------------------------------------------------------------------------------------------------------------------
# Per-example scores under both protocols


@dataclass(frozen=True)
class DialogueScores:
    """Scores of one system, one entry per dialogue (in first-seen order)."""

    dialogue_ids: list[str]
    rows: np.ndarray  # rows (references) per dialogue: the per_reference weights
    per_reference: dict[str, np.ndarray]  # mean over the dialogue's rows
    best_of_refs: dict[str, np.ndarray]  # max over the dialogue's references

    def protocol(self, name: str) -> dict[str, np.ndarray]:
        return {"per_reference": self.per_reference, "best_of_refs": self.best_of_refs}[name]

    def weights(self, name: str) -> np.ndarray | None:
        return self.rows if name == "per_reference" else None

    def example(self, i: int) -> dict:
        """Per-example scores of dialogue ``i``, for prediction files."""
        return {p: {k: float(v[i]) for k, v in self.protocol(p).items()} for p in PROTOCOLS}


def score_dialogues(dialogue_ids: Sequence[str], predictions: Sequence[str],
                    references: Sequence[str]) -> DialogueScores:
    """Score rows ``(dialogue_id, prediction, reference)``; a dialogue's rows may repeat its prediction.

    ``best_of_refs`` uses the prediction of the dialogue's first row (as the published reference numbers do).
    """
    if not (len(dialogue_ids) == len(predictions) == len(references)):
        raise ValueError("dialogue_ids, predictions and references must have the same length")
    groups: dict[str, list[int]] = {}
    for i, d in enumerate(dialogue_ids):
        groups.setdefault(d, []).append(i)
    cache: dict[tuple[str, str], dict[str, float]] = {}

    def score(p: str, r: str) -> dict[str, float]:
        if (p, r) not in cache:
            cache[(p, r)] = rouge_f1(p, r)
        return cache[(p, r)]

    per_ref = {k: [] for k in ROUGE_KEYS}
    best = {k: [] for k in ROUGE_KEYS}
    for rows in groups.values():
        own = [score(predictions[i], references[i]) for i in rows]
        first = [score(predictions[rows[0]], references[i]) for i in rows]
        for k in ROUGE_KEYS:
            per_ref[k].append(float(np.mean([s[k] for s in own])))
            best[k].append(max(s[k] for s in first))
    return DialogueScores(
        dialogue_ids=list(groups),
        rows=np.array([len(r) for r in groups.values()], dtype=float),
        per_reference={k: np.array(v) for k, v in per_ref.items()},
        best_of_refs={k: np.array(v) for k, v in best.items()},
    )


def score_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (sacrebleu) of one prediction per dialogue against all of that dialogue's references."""
    from sacrebleu.metrics import BLEU

    most = max(len(r) for r in references)
    streams = [[refs[j] if j < len(refs) else None for refs in references] for j in range(most)]
    return float(BLEU().corpus_score(list(predictions), streams).score)


# --------------------------------------------------------------------------------------------------------------------
# Bootstrap


def _weighted_mean(values: np.ndarray, weights: np.ndarray | None, axis=None) -> np.ndarray:
    if weights is None:
        return values.mean(axis=axis)
    return (values * weights).sum(axis=axis) / weights.sum(axis=axis)


def _resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_ci(values: Sequence[float], *, weights: Sequence[float] | None = None, resamples: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean with a percentile bootstrap CI. ``weights`` (e.g. rows per dialogue) make it a cluster bootstrap of a
    weighted mean: resampling units, re-weighting each resample."""
    v = np.asarray(values, dtype=float)
    w = None if weights is None else np.asarray(weights, dtype=float)
    mean = float(_weighted_mean(v, w))
    if len(v) < 2:
        return {"mean": mean, "ci_low": mean, "ci_high": mean}
    idx = _resample_indices(len(v), resamples, seed)
    boots = _weighted_mean(v[idx], None if w is None else w[idx], axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return {"mean": mean, "ci_low": float(low), "ci_high": float(high)}


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, weights: Sequence[float] | None = None,
                     resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Paired test of system a vs b on the same dialogues: mean difference a − b, its CI and a two-sided p-value.

    p is the share of resampled differences at least as far from the observed one as the observed one is from 0
    (the bootstrap distribution shifted to the null); identical systems give p = 1.
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    w = None if weights is None else np.asarray(weights, dtype=float)
    observed = float(_weighted_mean(d, w))
    if len(d) < 2:
        return {"difference": observed, "ci_low": observed, "ci_high": observed, "p_value": 1.0}
    # One set of resamples for the CI and the p-value (the same draws bootstrap_ci makes with this seed)
    idx = _resample_indices(len(d), resamples, seed)
    boots = _weighted_mean(d[idx], None if w is None else w[idx], axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    p = float((1 + np.sum(np.abs(boots - observed) >= abs(observed) - 1e-12)) / (1 + resamples))
    return {"difference": observed, "ci_low": float(low), "ci_high": float(high), "p_value": min(p, 1.0)}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values: the i-th smallest p times (m − i + 1), made monotone, capped at 1.

    Calling a test significant when its adjusted p is below alpha keeps the chance of even one false "significant"
    in the family at most alpha, whatever the tests' dependence (Holm 1979)."""
    p = np.asarray(p_values, dtype=float)
    if np.isnan(p).any():
        raise ValueError("holm: a p-value is NaN")
    adjusted, running = np.empty_like(p), 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, (len(p) - rank) * p[i])
        adjusted[i] = min(running, 1.0)
    return adjusted.tolist()


def bootstrap_difference(a: Sequence[float], b: Sequence[float], *, resamples: int = 1000, confidence: float = 0.95,
                         seed: int = 0) -> dict[str, float]:
    """mean(a) − mean(b) for two *independent* samples, with a percentile bootstrap CI (each resampled on its own)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    observed = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return {"difference": observed, "ci_low": observed, "ci_high": observed}
    rng = np.random.default_rng(seed)
    boots = (x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
             - y[rng.integers(0, len(y), size=(resamples, len(y)))].mean(axis=1))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return {"difference": observed, "ci_low": float(low), "ci_high": float(high)}


# --------------------------------------------------------------------------------------------------------------------
# Everything a stage reports for one system


def summarize_system(scores: DialogueScores, predictions: Sequence[str], references: Sequence[Sequence[str]], *,
                     resamples: int, confidence: float, seed: int) -> dict:
    """Metrics of one system: ROUGE under both protocols with CIs, BLEU, length and empty share.

    ``predictions`` and ``references`` are per dialogue, aligned with ``scores.dialogue_ids``.
    """
    ci = dict(resamples=resamples, confidence=confidence, seed=seed)
    out: dict = {"n_dialogues": len(scores.dialogue_ids), "n_rows": int(scores.rows.sum())}
    for name in PROTOCOLS:
        out[name] = {k: bootstrap_ci(v, weights=scores.weights(name), **ci) for k, v in scores.protocol(name).items()}
    out["bleu"] = score_bleu(predictions, references)
    out["length_words"] = bootstrap_ci([word_count(p) for p in predictions], **ci)
    out["empty_share"] = bootstrap_ci([float(not p.strip()) for p in predictions], **ci)
    # A summarizer whose output does not depend on the dialogue (one sentence for all) scores like `constant`.
    out["distinct_share"] = len(set(predictions)) / max(len(predictions), 1)
    return rounded(out)


def compare_systems(a: DialogueScores, b: DialogueScores, *, resamples: int, confidence: float,
                    seed: int) -> dict:
    """Paired bootstrap of a − b for every ROUGE metric and protocol, on the dialogues both systems scored."""
    if a.dialogue_ids != b.dialogue_ids:
        raise ValueError("paired comparison needs both systems scored on the same dialogues, in the same order")
    return rounded({name: {k: paired_bootstrap(a.protocol(name)[k], b.protocol(name)[k], weights=a.weights(name),
                                               resamples=resamples, confidence=confidence, seed=seed)
                           for k in ROUGE_KEYS}
                    for name in PROTOCOLS})
