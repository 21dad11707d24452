"""Training features: prompt → input_ids, summary → labels; cut to length (the dialogue, never the template's
instruction), never padded.

Padding happens per batch at training time (``DataCollatorForSeq2Seq`` pads labels with -100 so that padded
positions carry no loss); padding here would waste compute and, done with the pad id as the course labs did,
would train the model to predict padding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from summarizer.data import percentiles
from summarizer.io import rounded
from summarizer.prompts import build_prompt, fit_prompt


def token_lengths(tokenizer, texts: Sequence[str]) -> list[int]:
    """Untruncated token counts, special tokens included."""
    # verbose=False: counting lengths past the model limit is the point here, not a mistake to warn about.
    return [len(ids) for ids in tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]]


def token_counter(tokenizer) -> Callable[[str], int]:
    """Untruncated token count of one text, special tokens included (what the model's input budget counts)."""
    return lambda text: len(tokenizer(text, truncation=False, verbose=False)["input_ids"])


def fitted_prompts(tokenizer, dialogues: Sequence[str], template: str, max_source_tokens: int
                   ) -> tuple[list[str], list[int]]:
    """Prompts whose template is whole, the dialogue cut where the budget requires; and each uncut prompt's token
    count (over ``max_source_tokens``: that prompt was cut). Prompts are counted in one batch; only those over the
    budget are fitted one by one."""
    full = [build_prompt(d, template) for d in dialogues]
    lengths = token_lengths(tokenizer, full)
    count = token_counter(tokenizer)
    prompts = [prompt if n <= max_source_tokens else fit_prompt(d, template, count, max_source_tokens)[0]
               for prompt, n, d in zip(full, lengths, dialogues)]
    return prompts, lengths


def tokenize_rows(rows: Sequence[dict], tokenizer, template: str, max_source_tokens: int,
                  max_target_tokens: int) -> tuple[list[dict], dict]:
    """Return ``[{"id", "input_ids", "labels"}]`` and truncation statistics for these rows."""
    prompts, source_full = fitted_prompts(tokenizer, [r["dialogue"] for r in rows], template, max_source_tokens)
    summaries = [r["summary"] for r in rows]
    sources = tokenizer(prompts, truncation=True, max_length=max_source_tokens)["input_ids"]
    targets = tokenizer(text_target=summaries, truncation=True, max_length=max_target_tokens)["input_ids"]
    target_full = token_lengths(tokenizer, summaries)
    features = [{"id": r["id"], "input_ids": s, "labels": t} for r, s, t in zip(rows, sources, targets)]
    n = len(rows)
    stats = {
        "rows": n,
        # dialogues cut (at their end, the template kept whole) to fit max_source_tokens
        "truncated_source_share": rounded(sum(l > max_source_tokens for l in source_full) / n),
        "truncated_target_share": rounded(sum(l > max_target_tokens for l in target_full) / n),
        "prompt_tokens": percentiles(source_full),
        "summary_tokens": percentiles(target_full),
    }
    return features, stats
