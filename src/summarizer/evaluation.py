"""Scoring a system on the test split: the glue between generation, the scoring library and prediction files.

Test rows are grouped into dialogues (each with all its references); a system produces one prediction per
dialogue, which is scored against each reference (``per_reference``) and against the best one (``best_of_refs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from summarizer.data import group_references
from summarizer.scoring import DialogueScores, score_dialogues, summarize_system


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
    import numpy as np

    def column(protocol: str) -> dict:
        keys = records[0]["scores"][protocol]
        return {k: np.array([r["scores"][protocol][k] for r in records]) for k in keys}

    return DialogueScores(dialogue_ids=[r["dialogue_id"] for r in records],
                          rows=np.array([len(r["ids"]) for r in records], dtype=float),
                          per_reference=column("per_reference"), best_of_refs=column("best_of_refs"))
