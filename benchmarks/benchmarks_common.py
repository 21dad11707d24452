"""What both benchmarks share: the model they time."""

from __future__ import annotations

import torch


def flan_t5_small_random(tokenizer):
    """google/flan-t5-small's configuration (8+8 layers, d_model 512, 6 heads, gated-GELU), random weights."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=32128, d_model=512, d_ff=1024, d_kv=64, num_layers=8, num_decoder_layers=8,
                      num_heads=6, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    return T5ForConditionalGeneration(config).eval()
