"""Prompt building, shared by tokenization, the baseline, evaluation, PPO and the app.

Templates come from params (``prompt.template``, ``prompt.flan_template``) and hold one ``{dialogue}`` placeholder.
"""

from __future__ import annotations

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
