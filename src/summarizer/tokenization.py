"""Training features: prompt → input_ids, summary → labels; truncated, never padded.

Padding happens per batch at training time (``DataCollatorForSeq2Seq`` pads labels with -100 so that padded
positions carry no loss); padding here would waste compute and, done with the pad id as the course labs did,
would train the model to predict padding.
"""

from __future__ import annotations

from collections.abc import Sequence

from summarizer.data import percentiles
from summarizer.prompts import build_prompt


def token_lengths(tokenizer, texts: Sequence[str]) -> list[int]:
    """Untruncated token counts, special tokens included."""
    # verbose=False: counting lengths past the model limit is the point here, not a mistake to warn about.
    return [len(ids) for ids in tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]]


def tokenize_rows(rows: Sequence[dict], tokenizer, template: str, max_source_tokens: int,
                  max_target_tokens: int) -> tuple[list[dict], dict]:
    """Return ``[{"id", "input_ids", "labels"}]`` and truncation statistics for these rows."""
    prompts = [build_prompt(r["dialogue"], template) for r in rows]
    summaries = [r["summary"] for r in rows]
    sources = tokenizer(prompts, truncation=True, max_length=max_source_tokens)["input_ids"]
    targets = tokenizer(text_target=summaries, truncation=True, max_length=max_target_tokens)["input_ids"]
    source_full = token_lengths(tokenizer, prompts)
    target_full = token_lengths(tokenizer, summaries)
    features = [{"id": r["id"], "input_ids": s, "labels": t} for r, s, t in zip(rows, sources, targets)]
    n = len(rows)
    stats = {
        "rows": n,
        "truncated_source_share": round(sum(l > max_source_tokens for l in source_full) / n, 4),
        "truncated_target_share": round(sum(l > max_target_tokens for l in target_full) / n, 4),
        "prompt_tokens": percentiles(source_full),
        "summary_tokens": percentiles(target_full),
    }
    return features, stats
