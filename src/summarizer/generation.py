"""Batched generation, shared by evaluation, the baseline, PPO evaluation, the app and the CLI.

A :class:`TextGenerator` turns prompts into summaries with one backend: transformers' ``generate``
(:class:`TransformersGenerator`, here) or CTranslate2 (``summarizer.ct2``, built on this module's interface).
``summarizer.backends.load_generator`` is the one place that reads ``generation.backend`` and picks; nothing else
branches on it, and this module knows no backend but transformers.

Inputs are tokenized once, sorted by length (longest first, so an out-of-memory error shows at once) and batched,
so each batch pads to similar lengths; outputs are returned in the caller's order, with whether each one stopped at
``max_new_tokens`` without its end token (``truncated``). Greedy decoding gives the same text as one-at-a-time
generation (tests/test_generation.py). Under ``accelerate launch``, :func:`generate_sharded` splits the prompts over
the processes and gathers the texts back in order.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm.auto import tqdm
from transformers import AutoConfig, GenerationConfig, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from summarizer.config import GenerationParams
from summarizer.device import gpu_generation_batch_size, generation_bytes_per_sequence, resolve_batch_size
from summarizer.launch import is_launched

# What stage convert writes beside a converted model (ct2.py), or alone where nothing was converted.
CONVERSION_INFO = "conversion.json"
CTRANSLATE2_ABSENT = ("ctranslate2 is not installed (the offline GPU bundle leaves its 42 MB wheel out, and on a CUDA "
                      "13 machine it would also need CUDA 12's cuBLAS): generation uses transformers")


def ctranslate2_installed() -> bool:
    """Whether CTranslate2 can be imported, without importing it (its import loads its C++ library)."""
    return importlib.util.find_spec("ctranslate2") is not None

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
    if p.num_beams > 1:
        # Beam search that means the same on both backends: stop once num_beams hypotheses have finished, each
        # scored by its log-probability over its length (EOS counted, the start token not). That is CTranslate2's
        # patience 1 (ct2.translate_options). transformers' default early_stopping=False keeps searching for longer
        # hypotheses (generation/utils.py ~3374-3441 in transformers 5.23), which CTranslate2 has no option for:
        # 4 beams gave 1.55 words against CTranslate2's 1.07 on a model that stops at different lengths.
        kwargs |= dict(early_stopping=True, length_penalty=1.0)
    return GenerationConfig(**kwargs)


@dataclass(frozen=True)
class Generations:
    """Texts in the prompts' order, and whether each stopped at ``max_new_tokens`` without its end token."""

    texts: list[str]
    truncated: list[bool]

    @property
    def truncated_share(self) -> float:
        return sum(self.truncated) / len(self.truncated) if self.truncated else 0.0


class TextGenerator(ABC):
    """Prompts in, summaries out, in length-sorted batches with a progress bar; subclasses run one batch."""

    backend: str
    on_cpu: bool

    def __init__(self, tokenizer: PreTrainedTokenizerBase, *, batch_size: int, max_source_tokens: int):
        self.tokenizer, self.batch_size, self.max_source_tokens = tokenizer, batch_size, max_source_tokens

    @abstractmethod
    def _seed(self, seed: int) -> None: ...

    def backend_for(self, params: GenerationParams) -> str:
        """The backend that generates with ``params`` (a backend may hand a setting it cannot reproduce to
        another: ct2.CTranslate2Generator)."""
        return self.backend

    def check(self, params: GenerationParams) -> None:  # noqa: B027 (transformers expresses every setting)
        """Refuse settings this backend cannot express (ConfigError naming the key), before any generation."""

    @abstractmethod
    def generate_ids(self, batch: list[list[int]], params: GenerationParams) -> list[list[int]]:
        """The generated ids of each input (no decoder start token), ending with the end token where one was
        generated."""

    def generate(self, prompts: Sequence[str], params: GenerationParams, *, seed: int | None = None,
                 desc: str = "generating", progress: bool = True) -> Generations:
        if not prompts:
            return Generations([], [])
        encoded = self.tokenizer(list(prompts), truncation=True, max_length=self.max_source_tokens)["input_ids"]
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        if seed is not None:  # sampling is reproducible for a given seed, batch size and input set
            self._seed(seed)
        eos = self.tokenizer.eos_token_id
        texts: list[str | None] = [None] * len(prompts)
        truncated: list[bool | None] = [None] * len(prompts)
        # Counted in texts, not batches: "37/120 dialogues" tells the user more than "2/8 batches".
        with tqdm(total=len(prompts), desc=desc, unit="text", disable=not progress, leave=False) as bar:
            step = max(1, self.batch_size // params.num_beams)  # each beam is a sequence in memory
            for start in range(0, len(order), step):
                batch = order[start:start + step]
                generated = self.generate_ids([encoded[i] for i in batch], params)
                decoded = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
                for i, ids, text in zip(batch, generated, decoded):
                    texts[i], truncated[i] = text.strip(), eos not in ids
                bar.update(len(batch))
                bar.refresh()  # shown even when a batch takes less than tqdm's minimum interval (the app follows it)
        return Generations(texts, truncated)  # type: ignore[arg-type]


class TransformersGenerator(TextGenerator):
    """transformers' ``generate`` on a model (or a PEFT model) already on its device."""

    backend = "transformers"

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, batch_size: int,
                 max_source_tokens: int):
        super().__init__(tokenizer, batch_size=batch_size, max_source_tokens=max_source_tokens)
        self.model = model
        self.device = next(model.parameters()).device
        self.on_cpu = self.device.type == "cpu"

    def _seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def generate_ids(self, batch: list[list[int]], params: GenerationParams) -> list[list[int]]:
        padded = self.tokenizer.pad({"input_ids": batch}, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = self.model.generate(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"],
                                      generation_config=build_generation_config(params, self.model.config))
        # Column 0 is the decoder start token; a row that ended early is padded after its end token.
        eos = self.tokenizer.eos_token_id
        return [row[1:row.index(eos) + 1] if eos in row else row[1:] for row in out.tolist()]


def generate_batched(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                     params: GenerationParams, *, batch_size: int, max_source_tokens: int, seed: int | None = None,
                     desc: str = "generating", progress: bool = True) -> list[str]:
    """The texts of :class:`TransformersGenerator` over ``model``: for callers that hold a model in memory."""
    generator = TransformersGenerator(model, tokenizer, batch_size=batch_size, max_source_tokens=max_source_tokens)
    return generator.generate(prompts, params, seed=seed, desc=desc, progress=progress).texts


def generate_sharded(generator: TextGenerator, prompts: Sequence[str], params: GenerationParams, *,
                     seed: int | None = None, desc: str = "generating", progress: bool = True) -> Generations:
    """``generator.generate`` over all processes of an ``accelerate launch``; every process gets every text, in
    the prompts' order. Alone, it is ``generator.generate``.

    The prompts are ranked by length and dealt out in turn (longest to process 0, next to process 1, ...), so each
    process gets a similar share of long dialogues. Each generates its share in length-sorted batches as alone,
    which is why greedy and beam outputs do not depend on the number of processes (in fp32; in bf16 another batch
    layout can flip a near-tie). Sampling draws from the seed
    plus the process's rank: it repeats for a given seed and number of processes, but not across numbers of
    processes, because which dialogue meets which random draws depends on the share and its batches.
    """
    if not is_launched():
        return generator.generate(prompts, params, seed=seed, desc=desc, progress=progress)
    # Joins the process group that accelerate launch set up. cpu=True is what makes accelerate see several CPU
    # processes (gloo) rather than one process each (state.py, _prepare_backend), as the Trainer's use_cpu does.
    state = PartialState(cpu=generator.on_cpu)
    order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
    mine = order[state.process_index::state.num_processes]
    log.info("process %d of %d: generating %d of %d texts", state.process_index, state.num_processes, len(mine),
             len(prompts))
    out = generator.generate([prompts[i] for i in mine], params,
                             seed=None if seed is None else seed + state.process_index,
                             desc=desc, progress=progress and state.is_main_process)
    texts: list[str | None] = [None] * len(prompts)
    truncated: list[bool | None] = [None] * len(prompts)
    # all_gather_object: every rank gets every triple.
    for i, text, cut in gather_object(list(zip(mine, out.texts, out.truncated))):
        texts[i], truncated[i] = text, cut
    return Generations(texts, truncated)  # type: ignore[arg-type]


def auto_batch_size(value: int | str, model_dir: str | Path, *, device: str, dtype: torch.dtype | None,
                    source_tokens: int, new_tokens: int) -> int:
    """``generation.batch_size``: an integer as it is; ``auto`` is 16 on a CPU or MPS and, on CUDA, what half the
    free GPU memory holds for this model (at most 256), logged. Beam search divides it by the beams (generate)."""
    if value != "auto" or not device.startswith("cuda"):
        return resolve_batch_size(value, device)
    c = AutoConfig.from_pretrained(str(model_dir))
    per_sequence = generation_bytes_per_sequence(
        num_decoder_layers=c.num_decoder_layers, num_heads=c.num_heads, d_kv=c.d_kv, d_model=c.d_model,
        vocab_size=c.vocab_size, source_tokens=source_tokens, new_tokens=new_tokens,
        bytes_per_value=torch.finfo(dtype or torch.float32).bits // 8)
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    size = gpu_generation_batch_size(free, per_sequence)
    log.info("generation.batch_size auto on %s: %d sequences (%.1f MB each, %.1f GB free)", device, size,
             per_sequence / 1e6, free / 1e9)
    return size
