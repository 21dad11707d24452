"""Batched generation, shared by evaluation, the baseline, PPO evaluation and the app.

Inputs are tokenized once, sorted by length (longest first, so an out-of-memory error shows at once) and batched,
so each batch pads to similar lengths; outputs are returned in the caller's order. Greedy decoding gives the same
text as one-at-a-time generation (tests/test_generation.py). Under ``accelerate launch``, :func:`generate_sharded`
splits the prompts over the processes and gathers the texts back in order.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm.auto import tqdm
from transformers import GenerationConfig, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from summarizer.config import GenerationParams
from summarizer.launch import is_launched

log = logging.getLogger(__name__)


def build_generation_config(params: GenerationParams, model_config: PretrainedConfig,
                            **overrides) -> GenerationConfig:
    """A transformers ``GenerationConfig`` from params; ``overrides`` replace params fields (e.g. do_sample).

    Lengths are always explicit: without max_new_tokens transformers would stop at max_length=20 tokens.
    Sampling knobs are set only when sampling, so greedy and beam configs carry no ignored values.
    """
    p = dataclasses.replace(params, **overrides)
    kwargs = dict(max_new_tokens=p.max_new_tokens, min_new_tokens=p.min_new_tokens, num_beams=p.num_beams,
                  do_sample=p.do_sample, repetition_penalty=p.repetition_penalty,
                  pad_token_id=model_config.pad_token_id, eos_token_id=model_config.eos_token_id,
                  decoder_start_token_id=model_config.decoder_start_token_id)
    if p.do_sample:
        kwargs |= dict(temperature=p.temperature, top_k=p.top_k, top_p=p.top_p)
    return GenerationConfig(**kwargs)


def generate_batched(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                     generation_config: GenerationConfig, *, batch_size: int,
                     max_source_tokens: int, seed: int | None = None, desc: str = "generating",
                     progress: bool = True) -> list[str]:
    """Generate one text per prompt, in the prompts' order."""
    if not prompts:
        return []
    encoded = tokenizer(list(prompts), truncation=True, max_length=max_source_tokens)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    device = next(model.parameters()).device
    if seed is not None:  # sampling is reproducible for a given seed, batch size and input set
        torch.manual_seed(seed)
    outputs: list[str | None] = [None] * len(prompts)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    # Counted in texts, not batches: "37/120 dialogues" tells the user more than "2/8 batches".
    with torch.inference_mode(), tqdm(total=len(prompts), desc=desc, unit="text", disable=not progress,
                                      leave=False) as bar:
        for batch in batches:
            padded = tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt").to(device)
            generated = model.generate(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"],
                                       generation_config=generation_config)
            for i, text in zip(batch, tokenizer.batch_decode(generated, skip_special_tokens=True)):
                outputs[i] = text.strip()
            bar.update(len(batch))
    return outputs  # type: ignore[return-value]


def generate_sharded(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                     generation_config: GenerationConfig, *, batch_size: int, max_source_tokens: int,
                     seed: int | None = None, desc: str = "generating", progress: bool = True) -> list[str]:
    """:func:`generate_batched` over all processes of an ``accelerate launch``; every process gets every text, in
    the prompts' order. Alone, it is :func:`generate_batched`.

    The prompts are ranked by length and dealt out in turn (longest to process 0, next to process 1, ...), so each
    process gets a similar share of long dialogues. Each generates its share in length-sorted batches as alone,
    which is why greedy and beam outputs do not depend on the number of processes. Sampling draws from the seed
    plus the process's rank: it repeats for a given seed and number of processes, but not across numbers of
    processes, because which dialogue meets which random draws depends on the share and its batches.
    """
    if not is_launched():
        return generate_batched(model, tokenizer, prompts, generation_config, batch_size=batch_size,
                                max_source_tokens=max_source_tokens, seed=seed, desc=desc, progress=progress)
    # Joins the process group that accelerate launch set up. cpu=True is what makes accelerate see several CPU
    # processes (gloo) rather than one process each (state.py, _prepare_backend), as the Trainer's use_cpu does.
    state = PartialState(cpu=next(model.parameters()).device.type == "cpu")
    order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
    mine = order[state.process_index::state.num_processes]
    log.info("process %d of %d: generating %d of %d texts", state.process_index, state.num_processes, len(mine),
             len(prompts))
    texts = generate_batched(model, tokenizer, [prompts[i] for i in mine], generation_config, batch_size=batch_size,
                             max_source_tokens=max_source_tokens,
                             seed=None if seed is None else seed + state.process_index,
                             desc=desc, progress=progress and state.is_main_process)
    outputs: list[str | None] = [None] * len(prompts)
    for i, text in gather_object(list(zip(mine, texts))):  # all_gather_object: every rank gets every pair
        outputs[i] = text
    return outputs  # type: ignore[return-value]
