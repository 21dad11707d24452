"""Error analysis: per-example flags, counted per variant by the report.

Each flag is a cheap, explainable heuristic (no model): it points a reviewer at examples worth reading, it is not a
verdict. Thresholds come from params (``report.*``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from summarizer.data import word_count

FLAGS = ("empty", "length_issue", "missing_key_info", "hallucinated_entity", "speaker_confusion")

_WORD = re.compile(r"[A-Za-z0-9']+")
_TAG = re.compile(r"#Person(\d+)#")
_TAG_ACTION = re.compile(r"#Person(\d+)#\s*(?:'s\s+)?([A-Za-z]+)")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)([A-Z][a-z]+)")
_ENTITY = re.compile(r"\b(?:[A-Z][a-z]+|\d+(?:[.,:]\d+)*)\b")
STOPWORDS = frozenset("""
a about after again all also am an and any are as at be because been before being but by can could did do does
doing down during each few for from further had has have having he her here hers herself him himself his how i if in
into is it its itself just me more most my myself no nor not now of off on once only or other our ours ourselves out
over own same she should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with would you your
yours yourself yourselves person1 person2 person3 person4 says tells asks wants thinks
""".split())


@dataclass(frozen=True)
class Thresholds:
    min_words: int = 5  # shorter is a length issue
    max_length_ratio: float = 2.0  # longer than this × the reference is a length issue
    missing_info: float = 0.7  # share of the reference's content words absent from the prediction


def content_words(text: str) -> set[str]:
    return {w for w in (t.lower() for t in _WORD.findall(_TAG.sub(" ", text))) if w not in STOPWORDS and len(w) > 2}


def is_length_issue(prediction: str, references: Sequence[str], t: Thresholds) -> bool:
    words = word_count(prediction)
    ref_words = sum(word_count(r) for r in references) / len(references)
    return words < t.min_words or words > t.max_length_ratio * ref_words


def missing_share(prediction: str, reference: str) -> float:
    """Share of the reference's content words that the prediction does not contain."""
    ref = content_words(reference)
    return len(ref - content_words(prediction)) / len(ref) if ref else 0.0


def is_missing_key_info(prediction: str, references: Sequence[str], t: Thresholds) -> bool:
    """Flagged when even the closest reference has more than ``missing_info`` of its content words missing."""
    return min(missing_share(prediction, r) for r in references) > t.missing_info


def hallucinated_entities(prediction: str, dialogue: str, references: Sequence[str]) -> list[str]:
    """Capitalised names and numbers in the prediction that appear in neither the dialogue nor any reference.

    Sentence-initial words are skipped (they are capitalised anyway), and so are stop words.
    """
    source = " ".join([dialogue, *references]).lower()
    source_words = set(_WORD.findall(source))
    starts = {m.group(1) for m in _SENTENCE_START.finditer(prediction)}
    found = []
    for token in _ENTITY.findall(_TAG.sub(" ", prediction)):
        if token in starts or token.lower() in STOPWORDS:
            continue
        if token.lower() not in source_words and token.lower() not in source:
            found.append(token)
    return found


def _actions(text: str) -> dict[str, set[str]]:
    """Speaker tag → the words that directly follow it ("#Person2# orders ..." → {"2": {"orders"}})."""
    out: dict[str, set[str]] = {}
    for tag, word in _TAG_ACTION.findall(text):
        out.setdefault(tag, set()).add(word.lower())
    return out


def is_speaker_confusion(prediction: str, references: Sequence[str]) -> bool:
    """An action the references give only to another speaker is given to this one (roles swapped)."""
    pred = _actions(prediction)
    ref: dict[str, set[str]] = {}
    for r in references:
        for tag, words in _actions(r).items():
            ref.setdefault(tag, set()).update(words)
    for tag, words in pred.items():
        others = set().union(*(w for t, w in ref.items() if t != tag))
        mine = ref.get(tag, set())
        if any(w in others and w not in mine for w in words if w not in STOPWORDS):
            return True
    return False


def flag_example(prediction: str, dialogue: str, references: Sequence[str], t: Thresholds) -> dict[str, bool]:
    if not prediction.strip():
        return {f: f in ("empty", "length_issue", "missing_key_info") for f in FLAGS}
    return {
        "empty": False,
        "length_issue": is_length_issue(prediction, references, t),
        "missing_key_info": is_missing_key_info(prediction, references, t),
        "hallucinated_entity": bool(hallucinated_entities(prediction, dialogue, references)),
        "speaker_confusion": is_speaker_confusion(prediction, references),
    }
