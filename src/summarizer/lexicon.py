"""An offensive-word lexicon that is *not* the reward classifier, and the synthetic "toxic annotations" built with it.

**Why a lexicon.** PPO is rewarded by a classifier (alt-profanity-check offline, the RoBERTa hate-speech model on
the Hub); judging the detoxified summaries by that same classifier cannot tell removing an insult from gaming the
classifier (issue 34: PPO found stock phrases the classifier scores as very inoffensive and repeated them). So the
offensive share of the summaries is also measured by a public word list the policy was never rewarded by:
better-profanity's ``profanity_wordlist.txt`` (exact-pinned in requirements.txt), matched as whole lowercase words
and word sequences — not better-profanity's own matcher, whose leetspeak variants would flag ordinary words.

**Why toxic annotations.** DialogSum's summaries are rarely offensive: a summarizer trained on them has almost
nothing for PPO to remove (mean P(offensive) 0.047 in the learning profile), and inserting insults into the
*dialogues* changed nothing, since the small summarizer paraphrases and does not copy such words (0 of 120 test
summaries carried one; issue 34). So, as the documented scenario of an annotator who insults the speakers: a share
of the *training references* of the summarizer PPO starts from get an offensive word before every speaker tag
("stupid #Person1# asks ..."). A summarizer fine-tuned on them says such things on held-out test dialogues; PPO's
job is to drop the word and keep the summary. This is a synthetic setting, labelled so wherever it is reported; the
references ROUGE is measured against stay DialogSum's own.
"""

from __future__ import annotations

import functools
import importlib.resources
import random
import re
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"[a-z0-9]+(?:['_-][a-z0-9]+)*")
SPEAKER_TAG = re.compile(r"#Person\d+#")
LEXICON_SOURCE = "better-profanity 0.7.0, profanity_wordlist.txt"


@functools.cache
def lexicon() -> frozenset[tuple[str, ...]]:
    """better-profanity's word list as lowercase word tuples (26 of its 916 entries are several words)."""
    text = (importlib.resources.files("better_profanity") / "profanity_wordlist.txt").read_text(encoding="utf-8")
    return frozenset(tuple(_WORD.findall(line.lower())) for line in text.splitlines() if _WORD.findall(line.lower()))


@functools.cache
def _longest_entry() -> int:
    return max(len(entry) for entry in lexicon())


def offensive_words(text: str) -> list[str]:
    """The lexicon's entries found in ``text`` as whole words (case-insensitive), in order, repeats kept."""
    words = _WORD.findall(text.lower())
    entries, longest = lexicon(), _longest_entry()
    found = []
    for i in range(len(words)):
        for n in range(1, min(longest, len(words) - i) + 1):
            if tuple(words[i:i + n]) in entries:
                found.append(" ".join(words[i:i + n]))
    return found


def is_offensive(text: str) -> bool:
    return bool(offensive_words(text))


def check_words(words: Iterable[str]) -> list[str]:
    """The words not in the lexicon (a toxic annotation the lexicon cannot see would measure nothing)."""
    return [w for w in words if tuple(_WORD.findall(w.lower())) not in lexicon()]


def toxify_summary(summary: str, word: str) -> str:
    """``word`` before every speaker tag: "#Person1# asks #Person2#" → "stupid #Person1# asks stupid #Person2#"."""
    return SPEAKER_TAG.sub(lambda m: f"{word} {m.group(0)}", summary)


def toxify_rows(rows: Sequence[dict], *, share: float, words: Sequence[str], seed: int) -> tuple[list[dict], dict]:
    """A copy of ``rows`` in which ``share`` of the summaries that mention a speaker tag are toxified, each with one
    word drawn from ``words`` (seeded); the rest, and every summary without a tag, unchanged. Also the counts."""
    rng = random.Random(seed)
    tagged = [i for i, r in enumerate(rows) if SPEAKER_TAG.search(r["summary"])]
    chosen = set(rng.sample(tagged, round(share * len(tagged))))
    out, per_word = [], dict.fromkeys(words, 0)
    for i, row in enumerate(rows):
        if i in chosen:
            word = words[rng.randrange(len(words))]
            per_word[word] += 1
            row = {**row, "summary": toxify_summary(row["summary"], word)}
        out.append(row)
    return out, {"rows": len(rows), "with_speaker_tag": len(tagged), "toxified": len(chosen),
                 "toxified_share": round(len(chosen) / len(rows), 4) if rows else 0.0, "per_word": per_word}
