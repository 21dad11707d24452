"""What the benchmarks share: the model they time, the DialogSum text they time it on, and how they report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import T5Config, T5ForConditionalGeneration

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data/dialogsum"


def flan_t5_small_random(tokenizer):
    """google/flan-t5-small's configuration (8+8 layers, d_model 512, 6 heads, gated-GELU), random weights."""
    config = T5Config(vocab_size=32128, d_model=512, d_ff=1024, d_kv=64, num_layers=8, num_decoder_layers=8,
                      num_heads=6, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    return T5ForConditionalGeneration(config).eval()


def flan_t5_base_config(**overrides) -> T5Config:
    """google/flan-t5-base's configuration (12+12 layers, d_model 768, 12 heads, d_ff 2048, vocab 32128)."""
    shape = dict(vocab_size=32128, d_model=768, d_ff=2048, d_kv=64, num_layers=12, num_decoder_layers=12,
                 num_heads=12, feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=0,
                 eos_token_id=1, decoder_start_token_id=0)
    return T5Config(**(shape | overrides))


def dialogsum_text(data: str | Path, n_test: int, n_train: int = 2000):
    """(train rows, the first ``n_test`` test dialogues, a tokenizer trained on the train rows' dialogues):
    DialogSum's own text, so that lengths and padding are the real ones."""
    from summarizer.data import load_local_splits
    from summarizer.evaluation import to_dialogues
    from summarizer.modeling import train_t5_tokenizer

    splits = load_local_splits(data)
    train = splits["train"][:n_train]
    tokenizer = train_t5_tokenizer([r["dialogue"] for r in train], 8000, 512)
    return train, to_dialogues(splits["test"])[:n_test], tokenizer


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DATA), help="a DialogSum-layout folder (default: ../shared/data/dialogsum)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON after the line")
    return p


def report(line: str, figures: dict, as_json: bool) -> dict:
    """One line a person can read; the figures behind it as JSON when asked."""
    print(line)
    if as_json:
        print(json.dumps(figures, indent=2))
    return figures
