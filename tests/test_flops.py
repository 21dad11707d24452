"""The FLOP count behind the GPU check's MFU and the CPU time estimates, pinned on FLAN-T5-base's shape (built on
the meta device: shapes without memory, no download)."""

import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from summarizer.flops import ParameterSplit, parameter_split, train_flops_per_example

# google/flan-t5-base's config.json: T5 v1.1 (gated GELU), 12 + 12 layers. Its checkpoint has a head of its own
# (tie_word_embeddings false); transformers 5 builds every T5 tied (T5Config forces it, configuration_t5.py ~79-83)
# and unties at from_pretrained when the checkpoint holds both (modeling_utils.py tie_weights ~2560-2575).
FLAN_T5_BASE = dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_decoder_layers=12,
                    num_heads=12, feed_forward_proj="gated-gelu")
FLAN_T5_BASE_PARAMETERS = 247_577_856  # the published checkpoint, head untied


@pytest.fixture(scope="module")
def flan_base_split() -> ParameterSplit:
    with torch.device("meta"):
        model = T5ForConditionalGeneration(T5Config(**FLAN_T5_BASE))
    return parameter_split(model)


def test_flan_t5_base_splits_into_encoder_decoder_head_and_embeddings(flan_base_split):
    # by hand: an encoder layer = attention 4·768² + gated FF 3·768·2048 + 2 norms; the decoder adds
    # cross-attention and a norm; relative position buckets 32 × 12 heads in each stack's first layer
    encoder_layer = 4 * 768 ** 2 + 3 * 768 * 2048 + 2 * 768
    decoder_layer = encoder_layer + 4 * 768 ** 2 + 768
    assert flan_base_split.encoder == 12 * encoder_layer + 32 * 12 + 768
    assert flan_base_split.decoder == 12 * decoder_layer + 32 * 12 + 768
    assert flan_base_split.head == flan_base_split.embeddings == 32128 * 768
    # built here the head is tied (counted once); the checkpoint's own head makes the published size
    assert flan_base_split.total + flan_base_split.head == FLAN_T5_BASE_PARAMETERS


def test_training_flops_count_the_encoder_on_input_tokens_and_the_decoder_on_targets(flan_base_split):
    s = flan_base_split
    flops = train_flops_per_example(s, 200, 40)
    assert flops == 6 * (s.encoder * 200 + (s.decoder + s.head) * 40)
    assert flops == pytest.approx(1.3507e11, rel=1e-3)
    # the decoder-only formula, 6 × all of the checkpoint's parameters × all tokens, overstates it 2.6× here
    assert 6 * FLAN_T5_BASE_PARAMETERS * 240 / flops == pytest.approx(2.64, abs=0.01)


def test_a_tied_head_is_still_a_matrix_product_but_counted_once_in_the_size(flan_base_split):
    with torch.device("meta"):
        model = T5ForConditionalGeneration(T5Config(**FLAN_T5_BASE))
    assert flan_base_split.tied and flan_base_split.total == sum(p.numel() for p in model.parameters())
    assert train_flops_per_example(flan_base_split, 0, 1) == 6 * (flan_base_split.decoder + 32128 * 768)
