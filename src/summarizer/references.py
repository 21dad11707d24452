"""Reference baselines: summaries made without a model, which tell a reader what a ROUGE number is worth.

- ``lead``: the first k turns of the dialogue (Lead-3 for k = 3).
- ``longest``: the k longest turns, kept in dialogue order (DialogSum's own "Longest-3" baseline).
- ``constant``: one summary for every dialogue, chosen on the *train* split only: the train summary that agrees most
  (mean of ROUGE-1 and ROUGE-2 F1) with a seeded sample of other train summaries.
- ``oracle``: a greedy extractive oracle (ROUGE-1+2), not an upper bound. Turns are added greedily while they raise
  ROUGE (mean of ROUGE-1 and ROUGE-2 F1, averaged over the dialogue's references) against the dialogue's *own
  references*: it reads the answer, and shows roughly how far copying turns could go. It does not maximise ROUGE-L
  or best-of-references, on which it is also reported, and greedy is not optimal: on 100 test dialogues Lead-3 beat
  it on ROUGE-L for 6 and on ROUGE-1 for 2 (issue 35).

Each summary is then scored by the same scorer, protocols and dialogues as the models (``evaluation``).
The selection uses a fast ROUGE-N on rouge_score's own tokens (same tokenizer and stemmer as the scorer) instead of
calling rouge_score half a million times.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

REFERENCE_SYSTEMS = ("lead", "longest", "constant", "oracle")


def turns(dialogue: str) -> list[str]:
    """The speaker turns of a DialogSum dialogue (one per line), empty lines dropped."""
    return [t.strip() for t in dialogue.split("\n") if t.strip()]


def join_turns(selected: Sequence[str]) -> str:
    return "\n".join(selected)


def lead(dialogue: str, k: int) -> str:
    return join_turns(turns(dialogue)[:k])


def longest(dialogue: str, k: int) -> str:
    """The k longest turns (by characters; ties to the earlier turn), in the order they were spoken."""
    ts = turns(dialogue)
    keep = sorted(sorted(range(len(ts)), key=lambda i: (-len(ts[i]), i))[:k])
    return join_turns([ts[i] for i in keep])


# --------------------------------------------------------------------------------------------------------------------
# Fast ROUGE-N on rouge_score's tokens (selection only; reported scores come from scoring.py)


@lru_cache(maxsize=1)
def _tokenizer():
    from rouge_score import tokenizers

    return tokenizers.DefaultTokenizer(use_stemmer=True)


@dataclass(frozen=True)
class Grams:
    unigrams: Counter
    bigrams: Counter
    n1: int
    n2: int


def grams(text: str) -> Grams:
    tokens = _tokenizer().tokenize(text)
    bigrams = Counter(zip(tokens, tokens[1:]))
    return Grams(Counter(tokens), bigrams, len(tokens), max(len(tokens) - 1, 0))


def _f1(overlap: int, n_pred: int, n_ref: int) -> float:
    if not overlap or not n_pred or not n_ref:
        return 0.0
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r)


def rouge12(pred: Grams, ref: Grams) -> float:
    """Mean of ROUGE-1 and ROUGE-2 F1 (what extractive oracles usually maximise)."""
    r1 = _f1(sum((pred.unigrams & ref.unigrams).values()), pred.n1, ref.n1)
    r2 = _f1(sum((pred.bigrams & ref.bigrams).values()), pred.n2, ref.n2)
    return (r1 + r2) / 2


def oracle(dialogue: str, references: Sequence[str], max_turns: int | None = None) -> str:
    """Greedy extractive oracle: add the turn that raises the mean ROUGE against the references most; stop when
    none does. Uses the references: how far greedy extraction gets, not a system and not an upper bound."""
    ts = turns(dialogue)
    refs = [grams(r) for r in references]
    chosen: list[int] = []
    best = 0.0
    while len(chosen) < (max_turns or len(ts)):
        scored = []
        for i in range(len(ts)):
            if i in chosen:
                continue
            candidate = grams(join_turns([ts[j] for j in sorted([*chosen, i])]))
            scored.append((sum(rouge12(candidate, r) for r in refs) / len(refs), -i))
        if not scored:
            break
        score, neg_i = max(scored)
        if score <= best:
            break
        best, chosen = score, [*chosen, -neg_i]
    return join_turns([ts[j] for j in sorted(chosen)])


def constant_summary(train_summaries: Sequence[str], *, pool: int, seed: int) -> tuple[str, float]:
    """The train summary (among a seeded sample of ``pool``) with the highest mean ROUGE against a disjoint seeded
    sample of ``pool`` other train summaries; and that mean. Sees the train split only."""
    unique = sorted(set(train_summaries))
    rng = random.Random(seed)
    sample = rng.sample(unique, min(len(unique), 2 * pool))
    candidates, targets = sample[:len(sample) // 2], sample[len(sample) // 2:]
    target_grams = [grams(t) for t in targets]
    best, best_score = candidates[0], -1.0
    for c in tqdm(candidates, desc="constant summary", leave=False):
        g = grams(c)
        score = sum(rouge12(g, t) for t in target_grams) / len(target_grams)
        if score > best_score:
            best, best_score = c, score
    return best, best_score


def reference_summaries(name: str, dialogues: Sequence, *, k: int, constant: str | None = None) -> list[str]:
    """One summary per dialogue (``evaluation.Dialogue``) by the named reference system."""
    if name == "lead":
        return [lead(d.dialogue, k) for d in dialogues]
    if name == "longest":
        return [longest(d.dialogue, k) for d in dialogues]
    if name == "constant":
        if constant is None:
            raise ValueError("the constant baseline needs its summary (constant_summary)")
        return [constant] * len(dialogues)
    if name == "oracle":
        return [oracle(d.dialogue, d.references) for d in tqdm(dialogues, desc="oracle", leave=False)]
    raise ValueError(f"unknown reference system {name!r} (one of {', '.join(REFERENCE_SYSTEMS)})")
