"""Prompt building, shared by tokenization, the baseline, evaluation, PPO and the app.

Templates come from params (``prompt.template``, ``prompt.flan_template``) and hold one ``{dialogue}`` placeholder.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from summarizer.io import rounded

# Between solved examples in a few-shot prompt, as in the course's FLAN-T5 lab.
EXAMPLE_SEPARATOR = "\n\n\n"


def build_prompt(dialogue: str, template: str) -> str:
    """The dialogue placed into the template. The dialogue is used verbatim (no stripping) for reproducibility."""
    return template.format(dialogue=dialogue)


def fit_prompt(dialogue: str, template: str, count_tokens: Callable[[str], int], max_tokens: int
               ) -> tuple[str, bool]:
    """The prompt, with the *dialogue* cut at its end when needed so that the whole template fits ``max_tokens``;
    and whether it was cut.

    Truncating the tokenized prompt instead would cut its end, which is the template's instruction
    (``"\n\nSummary: "``, ``"What was going on?"``) that tells the model what to do.
    """
    text = build_prompt(dialogue, template)
    if count_tokens(text) <= max_tokens:
        return text, False
    low, high = 0, len(dialogue)  # the longest dialogue prefix that fits: a binary search over characters
    while low < high:
        mid = (low + high + 1) // 2
        if count_tokens(build_prompt(dialogue[:mid], template)) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    return build_prompt(dialogue[:low], template), True


def build_few_shot_prompt(dialogue: str, examples: Sequence[tuple[str, str]], template: str) -> str:
    """Solved ``(dialogue, summary)`` examples, each as template + summary, then the dialogue to summarize."""
    shots = [build_prompt(d, template) + s for d, s in examples]
    return EXAMPLE_SEPARATOR.join([*shots, build_prompt(dialogue, template)])


@dataclass(frozen=True)
class FittedPrompt:
    text: str
    examples_used: int
    examples_dropped: int
    dialogue_truncated: bool  # even with no example the dialogue exceeds the budget


def fit_few_shot_prompt(dialogue: str, examples: Sequence[tuple[str, str]], template: str,
                        count_tokens: Callable[[str], int], max_tokens: int) -> FittedPrompt:
    """Drop trailing examples until the prompt fits ``max_tokens``: the dialogue to summarize is never cut here.

    If the dialogue alone is too long, the prompt has no example and the dialogue is cut to fit (the template is
    kept whole, :func:`fit_prompt`); ``dialogue_truncated`` reports it.
    """
    for used in range(len(examples), -1, -1):
        text = build_few_shot_prompt(dialogue, examples[:used], template)
        if count_tokens(text) <= max_tokens:
            return FittedPrompt(text, used, len(examples) - used, False)
    return FittedPrompt(fit_prompt(dialogue, template, count_tokens, max_tokens)[0], 0, len(examples), True)


class ExamplePool:
    """Solved ``(dialogue, summary)`` examples with their token counts as shots, sorted by length.

    :meth:`choose` draws, per dialogue and seed, ``k`` examples among those short enough that all ``k`` fit the
    budget left by the dialogue. Drawing from the whole pool made few-shot one-shot in practice: three random
    DialogSum examples rarely fit 512 tokens next to the dialogue, so two were dropped.
    """

    def __init__(self, pool: Sequence[tuple[str, str]], template: str, count_tokens: Callable[[str], int]):
        shots = [(count_tokens(build_prompt(d, template) + s + EXAMPLE_SEPARATOR), d, s) for d, s in pool]
        shots.sort(key=lambda x: x[0])
        self.lengths = [n for n, _, _ in shots]
        self.examples = [(d, s) for _, d, s in shots]

    def choose(self, k: int, budget: int, seed: int, key: str) -> list[tuple[str, str]]:
        """``k`` examples for the dialogue ``key`` whose shots fit ``budget`` tokens together: deterministic for a
        seed and different across dialogues, so a score does not hinge on one lucky (or unlucky) demonstration.
        When fewer than ``k`` fit a fair share, the draw is among the shortest ``k``."""
        fitting = bisect.bisect_right(self.lengths, budget // max(k, 1))
        candidates = self.examples[:max(fitting, k)]
        return random.Random(f"{seed}:{key}").sample(candidates, min(k, len(candidates)))


def strategy_prompts(strategy: str, dialogues: Sequence[tuple[str, str]],
                     pool: Sequence[tuple[str, str]] | ExamplePool, *,
                     template: str, flan_template: str, few_shot_examples: int, seed: int,
                     count_tokens: Callable[[str], int], max_tokens: int) -> tuple[list[str], dict]:
    """Prompts of one baseline strategy for ``(dialogue_id, dialogue)`` pairs, and how often the budget bit.

    ``pool`` holds the solved ``(dialogue, summary)`` examples (or an :class:`ExamplePool` of them, measured once):
    the train split, never the test split. Templates are kept whole; a dialogue too long is cut at its end.
    """
    if strategy not in ("none", "zero_shot", "zero_shot_flan", "one_shot", "few_shot"):
        raise ValueError(f"unknown prompting strategy {strategy!r}")
    if isinstance(pool, ExamplePool):
        examples = pool
    else:
        examples = ExamplePool(pool, flan_template, count_tokens) if strategy in ("one_shot", "few_shot") else None
    prompts, cut, used = [], 0, []
    for key, dialogue in dialogues:
        if strategy == "none":
            prompts.append(dialogue)  # no template to keep: the tokenizer's truncation cuts the end
            cut += count_tokens(dialogue) > max_tokens
        elif strategy in ("zero_shot", "zero_shot_flan"):
            text, was_cut = fit_prompt(dialogue, template if strategy == "zero_shot" else flan_template,
                                       count_tokens, max_tokens)
            prompts.append(text)
            cut += was_cut
        else:
            k = 1 if strategy == "one_shot" else few_shot_examples
            budget = max_tokens - count_tokens(build_prompt(dialogue, flan_template))
            fit = fit_few_shot_prompt(dialogue, examples.choose(k, budget, seed, key), flan_template, count_tokens,
                                      max_tokens)
            prompts.append(fit.text)
            cut += fit.dialogue_truncated
            used.append(fit.examples_used)
    stats = {"dialogues": len(prompts), "dialogues_truncated": cut}
    if used:
        k = 1 if strategy == "one_shot" else few_shot_examples
        stats |= {"examples_used": used,  # per prompt, in the order of the dialogues (the caller files them)
                  "examples_used_counts": {str(n): used.count(n) for n in range(k + 1)},
                  "dialogues_with_dropped_examples": sum(u < k for u in used),
                  "examples_dropped": sum(k - u for u in used),
                  "examples_used_mean": rounded(sum(used) / len(used))}
    return prompts, stats
