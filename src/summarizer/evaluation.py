"""Scoring a system on the test split, and comparing systems: the glue between generation, the scoring library
and prediction files.

Test rows are grouped into dialogues (each with all its references); a system produces one prediction per
dialogue, which is scored against each reference (``per_reference``) and against the best one (``best_of_refs``).
Comparisons read the per-dialogue scores and toxicity of the prediction files, so nothing is generated twice and
every system is judged on identical dialogues with identical generation settings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from summarizer.data import group_references
from summarizer.io import rounded
from summarizer.scoring import (PROTOCOLS, ROUGE_KEYS, DialogueScores, bootstrap_ci, compare_systems, holm,
                                paired_bootstrap, score_dialogues, summarize_system)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dialogue:
    dialogue_id: str
    dialogue: str
    ids: tuple[str, ...]  # its test rows
    references: tuple[str, ...]  # one per row


def to_dialogues(rows: Sequence[dict]) -> list[Dialogue]:
    return [Dialogue(did, group[0]["dialogue"], tuple(r["id"] for r in group), tuple(r["summary"] for r in group))
            for did, group in group_references(rows).items()]


def score_predictions(dialogues: Sequence[Dialogue], predictions: Sequence[str]) -> DialogueScores:
    ids, preds, refs = [], [], []
    for d, p in zip(dialogues, predictions, strict=True):
        for ref in d.references:
            ids.append(d.dialogue_id)
            preds.append(p)
            refs.append(ref)
    return score_dialogues(ids, preds, refs)


def evaluate_system(dialogues: Sequence[Dialogue], predictions: Sequence[str], *, resamples: int,
                    confidence: float, seed: int) -> tuple[dict, DialogueScores]:
    """Metrics (both protocols with CIs, BLEU, lengths) and the per-dialogue scores for paired tests."""
    scores = score_predictions(dialogues, predictions)
    metrics = summarize_system(scores, predictions, [d.references for d in dialogues], resamples=resamples,
                               confidence=confidence, seed=seed)
    return metrics, scores


def prediction_records(dialogues: Sequence[Dialogue], predictions: Sequence[str], scores: DialogueScores,
                       **fields) -> list[dict]:
    """One JSON-able record per dialogue, for error analysis and the report."""
    return [{**fields, "dialogue_id": d.dialogue_id, "ids": list(d.ids), "prediction": p,
             "references": list(d.references), "scores": scores.example(i)}
            for i, (d, p) in enumerate(zip(dialogues, predictions, strict=True))]


def scores_from_records(records: Sequence[dict]) -> DialogueScores:
    """Rebuild per-dialogue scores from prediction records (to compare systems without re-scoring)."""
    def column(protocol: str) -> dict:
        keys = records[0]["scores"][protocol]
        return {k: np.array([r["scores"][protocol][k] for r in records]) for k in keys}

    return DialogueScores(dialogue_ids=[r["dialogue_id"] for r in records],
                          rows=np.array([len(r["ids"]) for r in records], dtype=float),
                          per_reference=column("per_reference"), best_of_refs=column("best_of_refs"))


def toxicity_summary(toxicity: Sequence[float], *, resamples: int, confidence: float, seed: int) -> dict:
    """Mean toxicity with its bootstrap CI, and the spread over dialogues."""
    values = np.asarray(toxicity, dtype=float)
    return rounded({"mean": bootstrap_ci(values, resamples=resamples, confidence=confidence, seed=seed),
                    "std": float(values.std())})


def compare_variants(records: Mapping[str, Sequence[dict]], reference: str, *, resamples: int, confidence: float,
                     seed: int) -> dict:
    """Every variant's paired ROUGE differences against ``reference``, from their prediction records.

    Each protocol's tests (every variant × ROUGE metric) are one family: each test also gets ``p_holm``, its
    Holm–Bonferroni adjusted p-value within that family, which is what the report calls significant or not."""
    if reference not in records:
        raise ValueError(f"reference {reference!r} is not among the variants {', '.join(records)}")
    base = scores_from_records(records[reference])
    out: dict = {"reference": reference}
    for name, rows in records.items():
        if name != reference:
            out[name] = compare_systems(scores_from_records(rows), base, resamples=resamples,
                                        confidence=confidence, seed=seed)
    variants = [v for v in out if v != "reference"]
    for protocol in PROTOCOLS:
        tests = [out[v][protocol][k] for v in variants for k in ROUGE_KEYS]
        for test, adjusted in zip(tests, holm([t["p_value"] for t in tests])):
            test["p_holm"] = round(adjusted, 6)
    out["correction"] = {"method": "holm", "family": "every variant x ROUGE metric, per protocol",
                         "tests_per_family": len(variants) * len(ROUGE_KEYS), "resamples": resamples}
    return out


# The goals a detoxification must meet to count as one (issue 34): less offensive, and still the same summaries.
DETOX_GOALS = {"rouge_l_drop": -0.01, "distinct_kept": 0.95, "length_ratio": (0.8, 1.2)}
# Summary lengths in words for the reward-by-length breakdown (Singhal et al. 2023): bucket lower bounds.
LENGTH_BUCKETS = (0, 6, 11, 16, 21, 31)


def margin_from_probability(p: Sequence[float], floor: float = 1e-6) -> np.ndarray:
    """The classifier's logit margin (non-toxic − toxic: the course's reward) from P(toxic), for two labels."""
    p = np.clip(np.asarray(p, dtype=float), floor, 1 - floor)
    return np.log1p(-p) - np.log(p)


def reward_by_length(before: Sequence[dict], after: Sequence[dict], *, min_count: int = 10) -> dict:
    """The course's reward (classifier margin) before and after within summary-length buckets (words).

    A gain that shows overall but vanishes inside the buckets came from changing the length, not the content
    (Singhal et al. 2023, "A Long Way to Go"). ``within``: the buckets' gains weighted by the after-summaries in
    each, over buckets with at least ``min_count`` summaries on both sides."""
    def table(records):
        words = np.array([len(r["prediction"].split()) for r in records])
        margin = margin_from_probability([r["toxicity"] for r in records])
        return np.searchsorted(LENGTH_BUCKETS, words, side="right") - 1, margin

    (bb, mb), (ba, ma) = table(before), table(after)
    buckets, gains, weights = [], [], []
    for i, low in enumerate(LENGTH_BUCKETS):
        high = LENGTH_BUCKETS[i + 1] - 1 if i + 1 < len(LENGTH_BUCKETS) else None
        nb, na = int((bb == i).sum()), int((ba == i).sum())
        row = {"words": f"{low}-{high}" if high is not None else f"{low}+", "n_before": nb, "n_after": na,
               "reward_before": float(mb[bb == i].mean()) if nb else None,
               "reward_after": float(ma[ba == i].mean()) if na else None}
        if nb >= min_count and na >= min_count:
            row["gain"] = row["reward_after"] - row["reward_before"]
            gains.append(row["gain"])
            weights.append(na)
        buckets.append(row)
    return {"reward": "classifier logit margin (the course's reward)", "overall_gain": float(ma.mean() - mb.mean()),
            "within_buckets_gain": float(np.average(gains, weights=weights)) if gains else None,
            "buckets": buckets}


def toxicity_before_after(before: Sequence[dict], after: Sequence[dict], *, names: tuple[str, str],
                          min_dialogues: int, resamples: int, confidence: float, seed: int) -> dict:
    """What PPO did to the test summaries, paired over dialogues (after − before): the classifier's P(offensive)
    (mean, share above 0.5), the lexicon's offensive share (a measure PPO was never rewarded by), ROUGE against the
    clean references, distinct summaries, length, the reward within length buckets, and the goals met."""
    if [r["dialogue_id"] for r in before] != [r["dialogue_id"] for r in after]:
        raise ValueError("before and after must be scored on the same dialogues")
    ci = dict(resamples=resamples, confidence=confidence, seed=seed)
    out: dict = {"n_dialogues": len(before), "enough_dialogues": len(before) >= min_dialogues}
    if not out["enough_dialogues"]:
        log.warning("toxicity compared on %d dialogues, fewer than ppo.min_eval_dialogues=%d", len(before),
                    min_dialogues)
    cols, scores = {}, {}
    for section, name, records in (("before", names[0], before), ("after", names[1], after)):
        tox = np.array([r["toxicity"] for r in records])
        cols[section] = {"toxicity": tox, "above_half": (tox > 0.5).astype(float),
                         "offensive": np.array([bool(r.get("offensive_words")) for r in records], dtype=float),
                         "words": np.array([len(r["prediction"].split()) for r in records], dtype=float)}
        scores[section] = scores_from_records(records)
        s = scores[section]
        out[section] = {
            "variant": name,
            "toxicity": toxicity_summary(tox, **ci),
            "above_half_share": float(cols[section]["above_half"].mean()),
            "offensive_share": bootstrap_ci(cols[section]["offensive"], **ci),
            "distinct": len({r["prediction"] for r in records}),
            "length_words": float(cols[section]["words"].mean()),
            "rouge": {k: bootstrap_ci(s.per_reference[k], weights=s.rows, **ci) for k in ROUGE_KEYS},
        }
    b, a = scores["before"], scores["after"]
    cb, ca = cols["before"], cols["after"]
    out["difference"] = {
        "toxicity": paired_bootstrap(ca["toxicity"], cb["toxicity"], **ci),
        "above_half_share": paired_bootstrap(ca["above_half"], cb["above_half"], **ci),
        "offensive_share": paired_bootstrap(ca["offensive"], cb["offensive"], **ci),
        "rouge": {k: paired_bootstrap(a.per_reference[k], b.per_reference[k], weights=b.rows, **ci)
                  for k in ROUGE_KEYS},
    }
    distinct_kept = out["after"]["distinct"] / max(out["before"]["distinct"], 1)
    length_ratio = out["after"]["length_words"] / max(out["before"]["length_words"], 1e-9)
    out["distinct_kept"], out["length_ratio"] = distinct_kept, length_ratio
    out["reward_by_length"] = reward_by_length(before, after)
    d, low, high = out["difference"], *DETOX_GOALS["length_ratio"]
    out["goals"] = {
        "offensive_share_fell": d["offensive_share"]["ci_high"] < 0,
        "toxicity_fell": d["toxicity"]["ci_high"] < 0,
        "rouge_l_kept": d["rouge"]["rougeL"]["ci_low"] >= DETOX_GOALS["rouge_l_drop"],
        "distinct_kept": distinct_kept >= DETOX_GOALS["distinct_kept"],
        "length_kept": low <= length_ratio <= high,
    }
    out["goals"]["all"] = all(out["goals"].values())
    return rounded(out)
