"""Prompt building, shared by tokenization, the baseline, evaluation, PPO and the app.

Templates come from params (``prompt.template``, ``prompt.flan_template``) and hold one ``{dialogue}`` placeholder.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Between solved examples in a few-shot prompt, as in the course's FLAN-T5 lab.
EXAMPLE_SEPARATOR = "\n\n\n"


def build_prompt(dialogue: str, template: str) -> str:
    """The dialogue placed into the template. The dialogue is used verbatim (no stripping) for reproducibility."""
    return template.format(dialogue=dialogue)


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

    If the dialogue alone is too long, the prompt has no example and the tokenizer's truncation will cut the
    dialogue; ``dialogue_truncated`` reports it.
    """
    for used in range(len(examples), -1, -1):
        text = build_few_shot_prompt(dialogue, examples[:used], template)
        if count_tokens(text) <= max_tokens:
            return FittedPrompt(text, used, len(examples) - used, False)
    return FittedPrompt(text, 0, len(examples), True)


def choose_examples(pool: Sequence[tuple[str, str]], k: int, seed: int, key: str) -> list[tuple[str, str]]:
    """``k`` solved examples for the dialogue ``key``: deterministic for a seed, different across dialogues, so a
    score does not hinge on one lucky (or unlucky) demonstration."""
    return random.Random(f"{seed}:{key}").sample(list(pool), k)


def strategy_prompts(strategy: str, dialogues: Sequence[tuple[str, str]], pool: Sequence[tuple[str, str]], *,
                     template: str, flan_template: str, few_shot_examples: int, seed: int,
                     count_tokens: Callable[[str], int], max_tokens: int) -> tuple[list[str], dict]:
    """Prompts of one baseline strategy for ``(dialogue_id, dialogue)`` pairs, and how often the budget bit.

    ``pool`` holds the solved ``(dialogue, summary)`` examples: the train split, never the test split.
    """
    prompts, fitted = [], []
    for key, dialogue in dialogues:
        if strategy == "none":
            prompts.append(dialogue)
        elif strategy == "zero_shot":
            prompts.append(build_prompt(dialogue, template))
        elif strategy == "zero_shot_flan":
            prompts.append(build_prompt(dialogue, flan_template))
        elif strategy in ("one_shot", "few_shot"):
            k = 1 if strategy == "one_shot" else few_shot_examples
            fit = fit_few_shot_prompt(dialogue, choose_examples(pool, k, seed, key), flan_template, count_tokens,
                                      max_tokens)
            fitted.append(fit)
            prompts.append(fit.text)
        else:
            raise ValueError(f"unknown prompting strategy {strategy!r}")
    stats = {"dialogues": len(prompts),
             "dialogues_truncated": sum(count_tokens(p) > max_tokens for p in prompts)}
    if fitted:
        stats |= {"dialogues_with_dropped_examples": sum(f.examples_dropped > 0 for f in fitted),
                  "examples_dropped": sum(f.examples_dropped for f in fitted),
                  "examples_used_mean": round(sum(f.examples_used for f in fitted) / len(fitted), 3)}
    return prompts, stats
