"""CTranslate2: each variant converted once (stage convert), and generation with the converted model.

CTranslate2 is a C++ inference engine for Transformer models; for T5 it runs the same arithmetic as transformers
(greedy parity is tested token for token) without transformers' per-token Python overhead, and can quantize at
load time (``generation.compute_type``). A LoRA variant is merged into its base in fp32 before conversion; the PPO
model is already whole. Prompt tuning cannot be converted (its soft prompt is a matrix of embeddings prepended to
the input, not tokens CTranslate2 could be given), so its "conversion" records that, and :func:`load_generator`
hands it back to transformers.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import ctranslate2
import torch
from ctranslate2.converters import TransformersConverter
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from summarizer.config import GenerationParams
from summarizer.errors import ConfigError, DeviceError, ModelError
from summarizer.generation import CONVERSION_INFO, Generations, TextGenerator
from summarizer.io import atomic_dir, read_json, write_json
from summarizer.modeling import load_summarizer

log = logging.getLogger(__name__)

NOT_CONVERTIBLE = "prompt tuning's soft prompt is embeddings, not tokens: CTranslate2 cannot be given it"


class _InMemoryConverter(TransformersConverter):
    """CTranslate2's transformers converter over a model already in memory (a merged adapter); the config and
    tokenizer it also reads come from ``source_dir``."""

    def __init__(self, model: PreTrainedModel, source_dir: str | Path):
        super().__init__(str(source_dir))
        self._model = model

    def load_model(self, model_class, model_name_or_path, **kwargs):
        # transformers 5 sets every T5Config's tie_word_embeddings to True and keeps the old meaning in
        # scale_decoder_outputs (models/t5/configuration_t5.py ~82; modeling_t5.py ~1044 scales the decoder output
        # by d_model**-0.5 only when it is set). CTranslate2 4.8's T5 loader still reads tie_word_embeddings to
        # decide that scaling (converters/transformers.py ~1811): left alone, every FLAN-T5 (v1.1: not scaled)
        # would be converted with its logits divided by sqrt(d_model). Only this in-memory copy is changed.
        config = self._model.config
        config.tie_word_embeddings = bool(getattr(config, "scale_decoder_outputs", config.tie_word_embeddings))
        return self._model


def convertible_model(model_dir: str | Path, base_dir: str | Path | None) -> PreTrainedModel | None:
    """The variant as one fp32 model (a LoRA adapter merged into its base), or None for prompt tuning."""
    model = load_summarizer(model_dir, base_dir, dtype=torch.float32)
    if isinstance(model, PeftModel):
        if model.active_peft_config.is_prompt_learning:
            return None
        model = model.merge_and_unload()  # W + B·A·scale in fp32, then the plain model without the adapter
    return model


def convert_variant(model_dir: str | Path, base_dir: str | Path | None, out_dir: str | Path) -> dict:
    """Convert the variant at ``model_dir`` into ``out_dir`` (float32 weights: the compute type is chosen when
    loading); write what was done to ``out_dir/conversion.json`` and return it."""
    model = convertible_model(model_dir, base_dir)
    with atomic_dir(out_dir) as partial:
        if model is None:
            info = {"backend": "transformers", "reason": NOT_CONVERTIBLE}
        else:
            source = base_dir if base_dir is not None else model_dir  # the tokenizer every variant shares
            _InMemoryConverter(model, source).convert(str(partial), force=True)
            info = {"backend": "ctranslate2", "ctranslate2": ctranslate2.__version__,
                    "merged_adapter": (Path(model_dir) / "adapter_config.json").exists(), "weights": "float32"}
        write_json(partial / CONVERSION_INFO, info)
    log.info("%s → %s: %s", model_dir, out_dir, info.get("reason", "converted"))
    return info


# --------------------------------------------------------------------------------------------------------------------
# Generation


def translate_options(p: GenerationParams) -> dict:
    """``generation`` params as ``Translator.translate_batch`` arguments, each with the meaning it has in
    transformers; what CTranslate2 cannot express is refused with the key's name, never ignored."""
    if p.do_sample and p.num_beams > 1:
        # transformers' beam-sample has no counterpart: CTranslate2 samples the beam's candidates instead.
        raise ConfigError("params.yaml: generation.num_beams must be 1 when do_sample is true with "
                          f"generation.backend ctranslate2, got {p.num_beams} (or use backend transformers)")
    options = dict(
        # with patience 1 a beam search stops once beam_size hypotheses have finished: transformers'
        # early_stopping=True (generation.build_generation_config); length_penalty 1: both divide by the length
        beam_size=p.num_beams, num_hypotheses=1, length_penalty=1.0, patience=1.0,
        max_decoding_length=p.max_new_tokens, min_decoding_length=p.min_new_tokens,
        repetition_penalty=p.repetition_penalty,
        return_end_token=True,  # to tell a finished summary from one cut at max_new_tokens
        max_input_length=0,  # inputs are already cut to prompt.max_source_tokens; CTranslate2 would cut at 1024
    )
    if p.do_sample:  # top_k 0 = no top-k filter in both libraries
        options |= dict(sampling_topk=p.top_k, sampling_topp=p.top_p, sampling_temperature=p.temperature)
    else:
        options |= dict(sampling_topk=1)  # CTranslate2's greedy: always the best token
    return options


def beam_mismatch(p: GenerationParams) -> str | None:
    """Why CTranslate2's beam search with ``p`` cannot give transformers' (None when it can): in a beam search
    transformers applies the repetition penalty, and the EOS ban of min_new_tokens, to log-probabilities after
    log_softmax, with no renormalisation (generation/utils.py ~3746-3747, logits_process.py ~432 and ~233 in
    transformers 5.23); CTranslate2 applies both to the logits before its softmax (decoding.cc). Greedy decoding
    picks the same token either way; a beam ranks its hypotheses differently, and no option moves either."""
    if p.num_beams == 1:
        return None
    if p.repetition_penalty != 1.0:
        return (f"beam search with repetition_penalty {p.repetition_penalty}: transformers penalises "
                "log-probabilities, CTranslate2 logits")
    if p.min_new_tokens > 0:
        return (f"beam search with min_new_tokens {p.min_new_tokens}: transformers bans the end token after "
                "log_softmax, CTranslate2 before it")
    return None


def device_of(device: str) -> tuple[str, int]:
    """CTranslate2's (device, index) for a resolved torch device name."""
    if device == "cpu":
        return "cpu", 0
    if device.startswith("cuda"):
        if ctranslate2.get_cuda_device_count() == 0:
            raise DeviceError("params.yaml: generation.backend ctranslate2 needs a CUDA build of CTranslate2 that "
                              f"sees the GPU, and sees none (device {device})")
        return "cuda", int(device.partition(":")[2] or 0)
    raise DeviceError(f"params.yaml: generation.backend ctranslate2 runs on a CPU or CUDA, not on {device}: "
                      "use backend transformers there")


def resolve_compute_type(value: str, device: str, dtype: torch.dtype | None) -> str:
    """``auto`` follows ``precision`` (fp32 → float32, bf16 → bfloat16, fp16 → float16); any type must be one the
    device supports."""
    if value == "auto":
        value = {torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dtype, "float32")
    kind, index = device_of(device)
    supported = ctranslate2.get_supported_compute_types(kind, index)
    if value != "default" and value not in supported:
        raise DeviceError(f"params.yaml: generation.compute_type must be one that CTranslate2 supports on {device} "
                          f"({', '.join(sorted(supported))}), got {value!r}")
    return value


def _open_translator(path: str | Path, **kwargs) -> ctranslate2.Translator:
    """A ``ctranslate2.Translator``; a folder with missing or broken files is one message, not a traceback."""
    try:
        return ctranslate2.Translator(str(path), **kwargs)
    except (RuntimeError, ValueError, OSError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"could not load the CTranslate2 model saved at {path}: {first_line}. Rerun the stage "
                         "that writes it (dvc repro), or dvc checkout.") from None


class CTranslate2Generator(TextGenerator):
    """``ctranslate2.Translator`` over a converted variant, in the same batches as the transformers path."""

    backend = "ctranslate2"

    def __init__(self, path: str | Path, tokenizer: PreTrainedTokenizerBase, *, device: str, compute_type: str,
                 batch_size: int, max_source_tokens: int, fallback: Callable[[], TextGenerator] | None = None):
        super().__init__(tokenizer, batch_size=batch_size, max_source_tokens=max_source_tokens)
        # Settings whose beam search CTranslate2 cannot reproduce (beam_mismatch) go to this generator (the
        # transformers one, built on first use), so that beam4 means one thing whatever generation.backend says.
        self._fallback_factory, self._fallback = fallback, None
        self._fallback_lock = threading.Lock()  # the app serves requests from several threads: build it once
        kind, index = device_of(device)
        self.on_cpu = kind == "cpu"
        self.compute_type = compute_type
        # As many threads as torch uses (one per core by default): the two backends compare on equal terms.
        self._load = lambda: _open_translator(path, device=kind, device_index=index, compute_type=compute_type,
                                              intra_threads=torch.get_num_threads() if self.on_cpu else 0)
        self.translator = self._load()
        self._sampled = False
        if not self.on_cpu:
            self._probe(device)

    def _probe(self, device: str) -> None:
        """One token on the GPU now: a missing CUDA library fails here with its fix, not in the middle of a stage."""
        try:
            self.translator.translate_batch([[self.tokenizer.eos_token]], beam_size=1, max_decoding_length=1)
        except RuntimeError as err:
            raise DeviceError(f"params.yaml: generation.backend ctranslate2 cannot run on {device}: {err}. "
                              f"CTranslate2 {ctranslate2.__version__} needs CUDA 12's libraries (e.g. pip install "
                              "nvidia-cublas-cu12); or set generation.backend: transformers") from None

    def check(self, params: GenerationParams) -> None:
        translate_options(params)
        if beam_mismatch(params) and self._fallback_factory is None:
            raise ConfigError(f"params.yaml: generation.backend ctranslate2 cannot reproduce transformers' "
                              f"{beam_mismatch(params)}; use backend transformers")

    def backend_for(self, params: GenerationParams) -> str:
        return "transformers" if beam_mismatch(params) else self.backend

    def generate(self, prompts, params: GenerationParams, **kwargs) -> Generations:
        why = beam_mismatch(params)
        if why is None:
            return super().generate(prompts, params, **kwargs)
        self.check(params)
        with self._fallback_lock:
            if self._fallback is None:
                log.info("generating with transformers, not CTranslate2: %s", why)
                self._fallback = self._fallback_factory()
        return self._fallback.generate(prompts, params, **kwargs)

    def _seed(self, seed: int) -> None:
        # CTranslate2 seeds a worker thread's random generator once, when it first samples: set_random_seed alone
        # does not restart a translator that has sampled already (measured: 1 of 8 samples differed on a second
        # seeded call). A fresh translator after the seed repeats exactly.
        ctranslate2.set_random_seed(seed)
        if self._sampled:
            self.translator, self._sampled = self._load(), False

    def generate_ids(self, batch: list[list[int]], params: GenerationParams) -> list[list[int]]:
        source = [self.tokenizer.convert_ids_to_tokens(ids) for ids in batch]  # ends with </s>, as in transformers
        self._sampled |= params.do_sample
        results = self.translator.translate_batch(source, **translate_options(params))
        return [self.tokenizer.convert_tokens_to_ids(r.hypotheses[0]) for r in results]


_converted_here: dict[tuple[str, str], tempfile.TemporaryDirectory] = {}


def converted_folder(model_dir: str | Path, base_dir: str | Path | None,
                     converted_dir: str | Path | None) -> Path:
    """``converted_dir`` (the convert stage's output) or, when None, a conversion made now into a temporary folder
    kept for this process (the app converts the variants it serves when the pipeline has not)."""
    if converted_dir is not None:
        return Path(converted_dir)
    key = (str(Path(model_dir).resolve()), str(base_dir))
    if key not in _converted_here:
        folder = tempfile.TemporaryDirectory(prefix="summarizer-ct2-")
        convert_variant(model_dir, base_dir, Path(folder.name) / "model")
        _converted_here[key] = folder
    return Path(_converted_here[key].name) / "model"


def load_generator(model_dir: str | Path, base_dir: str | Path | None, converted_dir: str | Path | None,
                   tokenizer: PreTrainedTokenizerBase, *, params: GenerationParams, device: str,
                   dtype: torch.dtype | None, batch_size: int, max_source_tokens: int,
                   fallback: Callable[[], TextGenerator] | None = None) -> CTranslate2Generator | None:
    """A CTranslate2 generator for the variant, or None (logged) when the variant cannot be converted;
    ``fallback`` builds the generator for the settings CTranslate2 cannot reproduce (:func:`beam_mismatch`)."""
    translate_options(params)  # refuse what CTranslate2 cannot express before loading anything
    compute_type = resolve_compute_type(params.compute_type, device, dtype)
    folder = converted_folder(model_dir, base_dir, converted_dir)
    if not (folder / CONVERSION_INFO).exists():
        raise ModelError(f"no CTranslate2 conversion at {folder}: run the convert stage (dvc repro)")
    info = read_json(folder / CONVERSION_INFO)
    if info["backend"] != "ctranslate2":
        log.warning("%s is generated by transformers, not CTranslate2: %s", model_dir, info["reason"])
        return None
    log.info("generating with CTranslate2 %s (%s) from %s", ctranslate2.__version__, compute_type, folder)
    return CTranslate2Generator(folder, tokenizer, device=device, compute_type=compute_type,
                                batch_size=batch_size, max_source_tokens=max_source_tokens, fallback=fallback)
