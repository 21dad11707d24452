"""The one reader of ``params.yaml``.

``load_params`` parses the file once into frozen dataclasses (``Params``, with one ``*Params`` class per section;
named so, not ``*Config``, to stay apart from transformers' and peft's config classes) and validates every value
before a stage touches a model or a dataset. Every key must be present (params.yaml is the single source of
defaults), unknown keys are rejected, numbers are coerced (PyYAML reads a bare ``5e-4`` as a string) and each
failure names the key and the value, e.g. ``params.yaml: lr must be > 0, got -1.0``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import string
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from summarizer.errors import ConfigError


# --------------------------------------------------------------------------------------------------------------------
# Field checks. Each returns None when the value is fine, else the end of the sentence "<key> must ...".
Check = Callable[[Any], str | None]


def _gt(bound: float) -> Check:
    return lambda v: None if v is None or v > bound else f"be > {bound}"


def _ge(bound: float) -> Check:
    return lambda v: None if v is None or v >= bound else f"be >= {bound}"


def _length(most: int, why: str) -> Check:
    """A length in tokens or characters: positive and at most ``most``, with the reason for the bound."""
    return lambda v: None if v is None or 0 < v <= most else f"be between 1 and {most:,} ({why})"


# FLAN-T5 was trained on 512 input tokens. T5's relative positions allow longer inputs, but attention memory grows
# with the square of the length and quality past a few times the training length is untested.
_SOURCE_TOKENS = _length(4096, "FLAN-T5 was trained on 512 input tokens; attention memory grows with its square")
_NEW_TOKENS = _length(1024, "summaries are short: DialogSum's longest reference has under 200 tokens")
# RoBERTa has 514 learned positions, two of them taken by its padding offset.
_CLASSIFIER_TOKENS = _length(512, "RoBERTa classifiers read at most 512 tokens")


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _device_name(v: str) -> str | None:
    # Only the spelling: whether this machine has that device is checked where the device is used.
    return None if _DEVICE.match(v) else "be one of auto, cpu, cuda, cuda:N, mps"


def is_hub_id(source: str) -> bool:
    """``owner/name`` as the Hub spells repository ids (a path such as ``./x/y`` or ``/data/x`` is not one)."""
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", source) is not None


def _data_source(v: str) -> str | None:
    return None if Path(v).is_dir() or is_hub_id(v) else "be an existing folder or a Hub dataset id like owner/name"


def _existing_file(v: str | None) -> str | None:
    return None if v is None or Path(v).is_file() else "be an existing file (or null)"


def _positive_or_auto(v: Any) -> str | None:
    return None if v == "auto" or (isinstance(v, int) and v > 0) else "be a positive integer or auto"


def _fraction(v: Any) -> str | None:
    return None if v is None or 0.0 <= v <= 1.0 else "be a fraction in [0, 1]"


def _warmup_share(v: Any) -> str | None:
    # transformers 5 takes warmup_steps >= 1 as a number of steps (training_args.py, get_warmup_steps ~2158):
    # a ratio of 1.0 would become one warmup step, the opposite of what it says.
    return None if v is None or 0.0 <= v < 1.0 else ("be a share of the steps in [0, 1) "
                                                      "(transformers reads 1.0 as one step)")


def _template(v: str) -> str | None:
    fields = [name for _, name, _, _ in string.Formatter().parse(v) if name is not None]
    if fields != ["dialogue"]:
        return "contain the placeholder {dialogue} exactly once and no other {field}"
    return None


def _non_empty(v: Any) -> str | None:
    return None if v else "not be empty"


def _unique_names(v: tuple) -> str | None:
    names = [x.name for x in v]
    if len(set(names)) != len(names):
        return "have unique names"
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z0-9_]+", n)]
    return f"have names of letters, digits and _ only (DVC joins metric keys with dots): {bad}" if bad else None


def checked(*checks: Check, **kwargs: Any) -> Any:
    """A dataclass field carrying validation checks in its metadata."""
    return field(metadata={"checks": checks}, **kwargs)


# --------------------------------------------------------------------------------------------------------------------
# The schema. No defaults: params.yaml holds every value, and a missing key is an error.


@dataclass(frozen=True)
class DataParams:
    source: str = checked(_non_empty, _data_source)
    revision: str = checked(_non_empty)
    max_train_samples: int | None = checked(_gt(0))
    max_validation_samples: int | None = checked(_gt(0))
    max_test_dialogues: int | None = checked(_gt(0))


@dataclass(frozen=True)
class TinyT5Params:
    vocab_size: int = checked(_gt(100))
    d_model: int = checked(_gt(0))
    d_ff: int = checked(_gt(0))
    num_layers: int = checked(_gt(0))
    num_heads: int = checked(_gt(0))
    d_kv: int = checked(_gt(0))
    initializer_factor: float = checked(_gt(0))
    # The attention's query, key and relative-position weights at this factor instead (null: initializer_factor)
    attention_initializer_factor: float | None = checked(_gt(0))
    # One encoder head starts attending to the previous token, one to the next (their relative-position bias at
    # this value; null: T5's random bias): the first half of the circuit that copies (docs/results.md)
    neighbour_bias: float | None = checked(_gt(0))


ATTENTION = ("auto", "eager", "sdpa")  # transformers' attn_implementation for the summarizer
OPTIMIZERS = ("adamw_torch", "adafactor")  # transformers' `optim` names
PRETRAIN_OBJECTIVES = ("span_corruption", "denoise", "topic")
GATE_ACTIONS = ("error", "warn")


@dataclass(frozen=True)
class PretrainParams:
    """Pretraining of the small T5 built here (model.name pretrain-small-t5): objectives that are not
    summarization, and their schedule."""

    objectives: tuple[Literal[PRETRAIN_OBJECTIVES], ...] = checked(_non_empty)  # type: ignore[valid-type]
    noise_density: float = checked(_fraction, _gt(0))  # span corruption, denoise: share of tokens masked
    mean_span_length: float = checked(_ge(1))
    denoise_target_tokens: int = checked(_gt(0))  # denoise: the target is the dialogue's first this many tokens
    denoise_source_tokens: int | None = checked(_gt(0))  # denoise: the input too (null: up to max_source_tokens)
    topic_template: str = checked(_template)  # the topic task's instruction
    optimizer: Literal[OPTIMIZERS] = field()  # type: ignore[valid-type]
    lr: float = checked(_gt(0))
    batch_size: int = checked(_gt(0))
    epochs: float = checked(_gt(0))
    max_steps: int | None = checked(_gt(0))
    warmup_ratio: float = checked(_warmup_share)
    weight_decay: float = checked(_ge(0))
    dropout: float = checked(_fraction)  # T5's dropout_rate while pretraining (fine-tuning keeps T5's 0.1)
    logging_steps: int = checked(_gt(0))
    save_steps: int | None = checked(_gt(0))  # checkpoints (a rerun resumes); null = once per epoch
    # The gate (pretraining.check_copy): the copy probe on this many validation dialogues, and the least copy gain
    # a base must show; below it base_model fails (error) or only says so loudly (warn). null: measure, never gate.
    probe_dialogues: int = checked(_gt(1))
    min_copy_gain: float | None = checked(_fraction)
    on_low_copy: Literal[GATE_ACTIONS] = field()  # type: ignore[valid-type]


@dataclass(frozen=True)
class ModelParams:
    name: str = checked(_non_empty)
    revision: str = checked(_non_empty)
    tiny: TinyT5Params = field()  # the architecture of a T5 built here (tiny-random-t5, pretrain-small-t5)
    pretrain: PretrainParams = field()
    attention: Literal[ATTENTION] = field()  # type: ignore[valid-type]  # auto: eager on a CPU, sdpa on CUDA


@dataclass(frozen=True)
class TinyRobertaParams:
    vocab_size: int = checked(_gt(100))
    hidden_size: int = checked(_gt(0))
    intermediate_size: int = checked(_gt(0))
    num_layers: int = checked(_gt(0))
    num_heads: int = checked(_gt(0))


# The labels of the classifiers the project knows by name, (non-toxic, toxic): changing classifier.name alone must
# not fail hours later in the classifier stage. modeling.py builds and loads them with these.
KNOWN_CLASSIFIER_LABELS = {
    "alt-profanity-check": ("not_offensive", "offensive"),
    "tiny-random-roberta": ("nothate", "hate"),
    "facebook/roberta-hate-speech-dynabench-r4-target": ("nothate", "hate"),
}


@dataclass(frozen=True)
class ClassifierParams:
    name: str = checked(_non_empty)
    revision: str = checked(_non_empty)
    toxic_label: str = checked(_non_empty)
    nontoxic_label: str = checked(_non_empty)
    max_tokens: int = checked(_CLASSIFIER_TOKENS)
    batch_size: int = checked(_gt(0))
    tiny: TinyRobertaParams = field()


@dataclass(frozen=True)
class PromptParams:
    template: str = checked(_template)
    flan_template: str = checked(_template)
    max_source_tokens: int = checked(_SOURCE_TOKENS)
    max_target_tokens: int = checked(_NEW_TOKENS)


GENERATION_BACKENDS = ("auto", "transformers", "ctranslate2")
# CTranslate2's compute types (auto: the one matching `precision`); which a device supports is checked where used.
COMPUTE_TYPES = ("auto", "default", "float32", "float16", "bfloat16", "int8", "int8_float32", "int8_float16",
                 "int8_bfloat16", "int16")


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings shared by evaluation, PPO evaluation and the app. Lengths always come from here:
    transformers' default max_length of 20 tokens would silently cut summaries short."""

    batch_size: int | Literal["auto"] = checked(_positive_or_auto)  # auto: 16 on a CPU or MPS, from memory on CUDA
    max_new_tokens: int = checked(_NEW_TOKENS)
    min_new_tokens: int = checked(_ge(0))
    num_beams: int = checked(_gt(0))
    do_sample: bool = field()
    temperature: float = checked(_gt(0))
    top_k: int = checked(_ge(0))
    top_p: float = checked(_fraction, _gt(0))
    repetition_penalty: float = checked(_gt(0))
    num_processes: int = checked(_gt(0))  # data-parallel generation in the baseline and evaluate stages
    backend: Literal[GENERATION_BACKENDS] = field()  # type: ignore[valid-type]
    compute_type: Literal[COMPUTE_TYPES] = field()  # type: ignore[valid-type]  # ctranslate2 only


STRATEGIES = ("none", "zero_shot", "zero_shot_flan", "one_shot", "few_shot")


@dataclass(frozen=True)
class GenerationSetting:
    """A named variation of ``generation``: only the fields given here change."""

    name: str = checked(_non_empty)
    do_sample: bool | None = None
    temperature: float | None = checked(_gt(0), default=None)
    num_beams: int | None = checked(_gt(0), default=None)
    top_k: int | None = checked(_ge(0), default=None)
    top_p: float | None = checked(_fraction, _gt(0), default=None)

    def overrides(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "name" and getattr(self, f.name) is not None}

    def apply(self, params: GenerationParams) -> GenerationParams:
        """``params`` with this setting's fields in place of its own."""
        return dataclasses.replace(params, **self.overrides())


@dataclass(frozen=True)
class BaselineParams:
    max_dialogues: int | None = checked(_gt(0))
    strategies: tuple[Literal[STRATEGIES], ...] = checked(_non_empty)  # type: ignore[valid-type]
    few_shot_examples: int = checked(_ge(2))
    settings: tuple[GenerationSetting, ...] = checked(_non_empty, _unique_names)


@dataclass(frozen=True)
class EvaluateParams:
    max_dialogues: int | None = checked(_gt(0))


@dataclass(frozen=True)
class ReferencesParams:
    """The reference baselines made without a model (stage references)."""

    k: int = checked(_gt(0))  # turns kept by Lead-k and Longest-k
    constant_pool: int = checked(_ge(10))  # train summaries tried as the constant, and as many it is judged against


@dataclass(frozen=True)
class ScoringParams:
    bootstrap_resamples: int = checked(_ge(100))
    confidence: float = checked(_fraction, _gt(0))


# The three fine-tuning methods (each a section of params.yaml) and every variant the pipeline evaluates.
METHODS = ("full", "lora", "prompt_tuning")
VARIANTS = ("base", *METHODS, "ppo")


@dataclass(frozen=True)
class MethodParams:
    """What every fine-tuning method sets for itself, so that a sweep of one method reruns only its chain."""

    optimizer: Literal[OPTIMIZERS] = field()  # type: ignore[valid-type]
    batch_size: int = checked(_gt(0))
    grad_accum_steps: int = checked(_gt(0))
    epochs: float = checked(_gt(0))
    max_steps: int | None = checked(_gt(0))  # overrides epochs when set
    warmup_ratio: float = checked(_warmup_share)
    weight_decay: float = checked(_ge(0))
    activation_checkpointing: bool = field()  # recompute activations in the backward pass (memory for time)


@dataclass(frozen=True)
class FullParams(MethodParams):
    """Full fine-tuning; its learning rate is the top-level ``lr``."""


@dataclass(frozen=True)
class LoraParams(MethodParams):
    lr: float = checked(_gt(0))
    r: int = checked(_gt(0))
    alpha: int = checked(_gt(0))
    dropout: float = checked(_fraction)
    target_modules: tuple[str, ...] = checked(_non_empty)


@dataclass(frozen=True)
class PromptTuningParams(MethodParams):
    lr: float = checked(_gt(0))
    num_virtual_tokens: int = checked(_gt(0))
    init_text: str = checked(_non_empty)


@dataclass(frozen=True)
class TrainingParams:
    """Shared by the three methods: evaluation, checkpoints, logging, batching and processes."""

    eval_steps: int | None = checked(_gt(0))  # null: validate once per epoch
    save_steps: int | None = checked(_gt(0))  # null: checkpoint once per epoch
    save_total_limit: int = checked(_gt(0))
    logging_steps: int = checked(_gt(0))
    group_by_length: bool = field()
    # The model's own dropout (T5's dropout_rate) while fine-tuning; None keeps the base's (FLAN-T5: 0.1)
    dropout_rate: float | None = checked(_fraction)
    eval_batch_size: int = checked(_gt(0))
    num_processes: int = checked(_gt(0))
    accelerate_config: str | None = checked(_existing_file)  # passed to `accelerate launch --config_file`


@dataclass(frozen=True)
class ToxicReferencesParams:
    """The synthetic "toxic annotations" the summarizer PPO starts from is fine-tuned on (summarizer.lexicon)."""

    share: float = checked(_fraction)  # of the train/validation references that mention a speaker tag
    # Each must be in the lexicon (checked by the toxify stage, which reads it). One word per toxified reference.
    words: tuple[str, ...] = checked(_non_empty)


@dataclass(frozen=True)
class PpoParams:
    """PPO detoxification (trl 0.11.4) of the LoRA summarizer trained on the toxic references: reward, sampling and
    the held-out measure."""

    lr: float = checked(_gt(0))
    steps: int = checked(_gt(0))
    batch_size: int = checked(_gt(0))
    mini_batch_size: int = checked(_gt(0))
    ppo_epochs: int = checked(_gt(0))
    init_kl_coef: float = checked(_ge(0))
    adaptive_kl: bool = field()
    target_kl: float = checked(_gt(0))
    kl_horizon: int = checked(_gt(0))  # trl's adaptive-KL horizon: how fast the coefficient may move
    generation_batch_size: int | Literal["auto"] = checked(_positive_or_auto)
    min_new_tokens: int = checked(_gt(0))
    max_new_tokens: int = checked(_NEW_TOKENS)
    # Ziegler et al. (2019): every response sampled to max_new_tokens, EOS not suppressed, cut at its first EOS to be
    # scored; false = the course's sampling (a length drawn per step, a response ends at EOS)
    fixed_length: bool = field()
    min_summary_tokens: int = checked(_ge(0))  # a cut summary shorter than this gets short_penalty subtracted
    short_penalty: float = checked(_ge(0))
    toxicity_reward: Literal["margin", "log_probability"] = field()
    quality_weight: float = checked(_ge(0))  # × ROUGE-L F1 of the cut summary against the dialogue's reference
    top_k: int = checked(_ge(0))
    top_p: float = checked(_fraction, _gt(0))
    prompt_min_chars: int = checked(_ge(0))
    prompt_max_chars: int = checked(_gt(0))
    # The reward before and after PPO on prompts it never trains on (0 prompts: not measured)
    heldout_prompts: int = checked(_ge(0))
    heldout_samples: int = checked(_gt(0))
    min_eval_dialogues: int = checked(_gt(0))


@dataclass(frozen=True)
class ReportParams:
    min_words: int = checked(_ge(0))  # error analysis: a prediction shorter than this is a length issue
    max_length_ratio: float = checked(_gt(0))  # ... and so is one longer than this × the reference
    missing_info: float = checked(_fraction)  # share of reference content words missing → missing_key_info
    worst_examples: int = checked(_gt(0))
    significance: float = checked(_fraction, _gt(0))  # p-value below which a difference is called significant


@dataclass(frozen=True)
class AppParams:
    host: str = checked(_non_empty)
    port: int = checked(_length(65535, "the largest TCP port"))
    max_input_chars: int = checked(_length(1_000_000, "a paste of a million characters is a mistake"))
    concurrency_limit: int = checked(_gt(0))


@dataclass(frozen=True)
class Params:
    seed: int = checked(_ge(0))
    device: str = checked(_non_empty, _device_name)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field()
    deterministic: bool = field()
    lr: float = checked(_gt(0))
    data: DataParams = field()
    model: ModelParams = field()
    classifier: ClassifierParams = field()
    prompt: PromptParams = field()
    generation: GenerationParams = field()
    scoring: ScoringParams = field()
    baseline: BaselineParams = field()
    evaluate: EvaluateParams = field()
    references: ReferencesParams = field()
    training: TrainingParams = field()
    full: FullParams = field()
    lora: LoraParams = field()
    prompt_tuning: PromptTuningParams = field()
    toxic_references: ToxicReferencesParams = field()
    ppo: PpoParams = field()
    report: ReportParams = field()
    app: AppParams = field()

    def __post_init__(self) -> None:
        # Cross-field rules, still named by key.
        implied = KNOWN_CLASSIFIER_LABELS.get(self.classifier.name)
        if implied and (self.classifier.nontoxic_label, self.classifier.toxic_label) != implied:
            raise ConfigError(f"params.yaml: classifier.toxic_label and classifier.nontoxic_label must be "
                              f"{implied[1]} and {implied[0]} for classifier.name {self.classifier.name} (its "
                              f"labels), got {self.classifier.toxic_label} and {self.classifier.nontoxic_label}")
        if self.ppo.mini_batch_size > self.ppo.batch_size or self.ppo.batch_size % self.ppo.mini_batch_size:
            raise ConfigError(f"params.yaml: ppo.mini_batch_size must divide ppo.batch_size, got "
                              f"{self.ppo.mini_batch_size} and {self.ppo.batch_size}")
        for key, procs in (("training", self.training.num_processes), ("generation", self.generation.num_processes)):
            if procs > 1 and re.fullmatch(r"cuda:\d+", self.device):
                raise ConfigError(f"params.yaml: {key}.num_processes must be 1 with device {self.device} (several "
                                  f"processes take one GPU each: use device cuda or auto), got {procs}")
        if self.training.accelerate_config and re.fullmatch(r"cuda:\d+", self.device):
            raise ConfigError(f"params.yaml: training.accelerate_config must be null with device {self.device} (the "
                              f"config file chooses the GPUs: use device cuda or auto), got "
                              f"{self.training.accelerate_config}")
        if self.generation.min_new_tokens > self.generation.max_new_tokens:
            raise ConfigError(f"params.yaml: generation.min_new_tokens must be <= generation.max_new_tokens, got "
                              f"{self.generation.min_new_tokens} > {self.generation.max_new_tokens}")
        if self.ppo.min_new_tokens > self.ppo.max_new_tokens:
            raise ConfigError(f"params.yaml: ppo.min_new_tokens must be <= ppo.max_new_tokens, got "
                              f"{self.ppo.min_new_tokens} > {self.ppo.max_new_tokens}")
        if self.ppo.prompt_min_chars >= self.ppo.prompt_max_chars:
            raise ConfigError(f"params.yaml: ppo.prompt_min_chars must be < ppo.prompt_max_chars, got "
                              f"{self.ppo.prompt_min_chars} and {self.ppo.prompt_max_chars}")

    @property
    def bootstrap(self) -> dict[str, Any]:
        """The bootstrap settings every confidence interval and paired test takes, as keyword arguments."""
        return {"resamples": self.scoring.bootstrap_resamples, "confidence": self.scoring.confidence,
                "seed": self.seed}

    def method(self, name: str) -> MethodParams:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r} (one of {', '.join(METHODS)})")
        return getattr(self, name)

    def method_lr(self, name: str) -> float:
        return self.lr if name == "full" else self.method(name).lr  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------------------------
# The generic loader.


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the annotated type, or raise ConfigError naming the key."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            return _coerce(value, members[0], key)
        for member in members:  # e.g. int | Literal["auto"]: the first member that accepts the value
            try:
                return _coerce(value, member, key)
            except ConfigError:
                pass
        names = [", ".join(map(str, typing.get_args(m))) if typing.get_origin(m) is Literal else _type_name(m)
                 for m in members]
        raise ConfigError(f"params.yaml: {key} must be {' or '.join(names)}; got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if len(choices) == 1 and isinstance(choices[0], tuple):  # Literal[TUPLE_CONSTANT]
            choices = choices[0]
        if value not in choices:
            raise ConfigError(f"params.yaml: {key} must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if origin is tuple:
        (inner, _) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"params.yaml: {key} must be a list, got {value!r}")
        return tuple(_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"params.yaml: {key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"params.yaml: {key} must be an integer, got {value!r}")
        return value
    if tp is float:
        # PyYAML (YAML 1.1) reads `5e-4` as the string "5e-4": accept any numeric spelling.
        if isinstance(value, bool):
            raise ConfigError(f"params.yaml: {key} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"params.yaml: {key} must be a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"params.yaml: {key} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {_type_name(tp)} for {key}")  # a bug in the schema, not in params


def _build(cls: type, mapping: Any, prefix: str) -> Any:
    where = prefix or "the top level"
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"params.yaml: {where} must be a mapping of keys, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        close = difflib.get_close_matches(str(unknown[0]), list(fields), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"params.yaml: unknown key {key} ({hint}known keys in {where}: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in mapping:
            if f.default is not dataclasses.MISSING:  # only small optional overrides have defaults
                values[name] = f.default
                continue
            raise ConfigError(f"params.yaml: missing key {key}")
        value = _coerce(mapping[name], hints[name], key)
        for check in f.metadata.get("checks", ()):
            problem = check(value)
            if problem:
                raise ConfigError(f"params.yaml: {key} must {problem}, got {value!r}")
        values[name] = value
    return cls(**values)


def parse_params(raw: Mapping[str, Any]) -> Params:
    """Validate an already-parsed params mapping: values only. Whether this machine has the ``device`` named here
    is checked where the device is used (``device.select_runtime``), so stages that never touch a model run
    anywhere."""
    return _build(Params, raw, "")


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml. Raises ConfigError (with the key's name) on any problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (run from the project root or pass --params)") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return parse_params(raw or {})
