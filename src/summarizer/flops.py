"""Training FLOPs of an encoder-decoder, for the model FLOPs utilisation and for time estimates.

The usual 6 × parameters × tokens (forward 2, backward 4 FLOPs per parameter per token; Kaplan et al. 2020) is
for a decoder-only model, where every parameter sees every token. In an encoder-decoder the encoder sees only the
input tokens and the decoder and the output layer only the target tokens:

    FLOPs per example = 6 × (N_enc · T_in + (N_dec + N_head) · T_out)

N_enc and N_dec leave out the token embeddings (a lookup, not a matrix product); N_head is the output projection
(d_model × vocabulary), a matrix product whether or not its weights are tied to the embeddings. Attention's own
score products (∝ T² per layer) are left out, as in Kaplan's count: under 5% at DialogSum's lengths for T5-base.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM


@dataclass(frozen=True)
class ParameterSplit:
    encoder: int  # without the token embeddings
    decoder: int  # without the token embeddings
    head: int  # the output projection, d_model × vocabulary
    embeddings: int  # the token embeddings (shared or not): looked up, not multiplied
    tied: bool = False  # the head's weights are the embeddings' (counted once in ``total``)

    @property
    def total(self) -> int:
        return self.encoder + self.decoder + self.embeddings + (0 if self.tied else self.head)


def _count(module: torch.nn.Module, skip: set[int]) -> int:
    return sum(p.numel() for p in module.parameters() if id(p) not in skip)


def parameter_split(model: torch.nn.Module) -> ParameterSplit:
    """The split of a transformers encoder-decoder (``get_encoder``, ``get_decoder``, ``get_output_embeddings``);
    works on a meta-device model, whose parameters have shapes and no memory."""
    embeddings = {id(p): p for m in (model.get_input_embeddings(), model.get_encoder().get_input_embeddings(),
                                      model.get_decoder().get_input_embeddings()) for p in m.parameters()}
    head = model.get_output_embeddings()
    head_params = list(head.parameters())
    tied = all(id(p) in embeddings for p in head_params)
    return ParameterSplit(encoder=_count(model.get_encoder(), set(embeddings)),
                          decoder=_count(model.get_decoder(), set(embeddings)),
                          head=head.in_features * head.out_features + (head.out_features if head.bias is not None
                                                                       else 0),
                          embeddings=sum(p.numel() for p in embeddings.values()), tied=tied)


def train_flops_per_example(split: ParameterSplit, input_tokens: float, target_tokens: float) -> float:
    """6 × (N_enc · T_in + (N_dec + N_head) · T_out): one forward and backward pass of one example."""
    return 6.0 * (split.encoder * input_tokens + (split.decoder + split.head) * target_tokens)


def generation_flops_per_token(split: ParameterSplit, input_tokens: float, new_tokens: float) -> float:
    """Forward FLOPs per generated token: the encoder once per dialogue (2 × N_enc × T_in, spread over the new
    tokens), the decoder and the head once per new token (2 × (N_dec + N_head))."""
    return 2.0 * (split.encoder * input_tokens / max(new_tokens, 1.0) + split.decoder + split.head)


def model_flops_utilisation(flops_per_second: float, peak_flops: float) -> float:
    return flops_per_second / peak_flops


def generation_flops(split: ParameterSplit, prompts: int, input_tokens: float, new_tokens: float,
                     beams: int = 1) -> float:
    """Forward FLOPs of generating ``new_tokens`` for each of ``prompts`` (× ``beams``)."""
    return prompts * beams * new_tokens * generation_flops_per_token(split, input_tokens, new_tokens)


def saved_model_split(model_dir: str | Path) -> ParameterSplit:
    """The split of the model saved at ``model_dir``, from its config alone (built on the meta device: no weights
    are read). transformers 5 builds every T5 with a tied head, so a FLAN-T5 checkpoint (own head) counts its
    head once here."""
    config = AutoConfig.from_pretrained(str(model_dir))
    with torch.device("meta"):
        model = AutoModelForSeq2SeqLM.from_config(config)
    return parameter_split(model)
