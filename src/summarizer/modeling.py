"""Models: materialise the base summarizer and the toxicity classifier, and load any trained variant.

A model name is one of
- ``tiny-random-t5`` / ``tiny-random-roberta``: tiny random models built from a config, with a tokenizer trained
  in seconds on the training text: for offline runs and tests (their scores mean nothing);
- an existing local folder holding a saved model;
- a Hugging Face Hub id, loaded at a pinned revision.
Weights are read as the pinned revision has them: safetensors when present, else ``pytorch_model.bin`` (loaded
with ``weights_only``; the Hub's safetensors conversion bot is never asked, so an unpinned bot conversion cannot
be loaded in its place). Models are always *saved* as safetensors, and remote code is never trusted.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from peft import PeftModel
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer,
                          PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast, RobertaConfig,
                          RobertaForSequenceClassification, T5Config, T5ForConditionalGeneration)
from transformers.models.t5.modeling_t5 import T5Attention

from summarizer.config import KNOWN_CLASSIFIER_LABELS, TinyRobertaParams, TinyT5Params
from summarizer.errors import ModelError
from summarizer.io import atomic_dir, write_json

log = logging.getLogger(__name__)

MODEL_INFO = "summarizer-model-info.json"
TINY_T5 = "tiny-random-t5"
TINY_ROBERTA = "tiny-random-roberta"
# Label order of facebook/roberta-hate-speech-dynabench-r4-target, mirrored by the tiny classifier.
CLASSIFIER_LABELS = KNOWN_CLASSIFIER_LABELS[TINY_ROBERTA]
# The offline offensive-language classifier of the alt-profanity-check package (its weights are in its wheel).
PROFANITY_CHECK = "alt-profanity-check"
PROFANITY_CHECK_LABELS = KNOWN_CLASSIFIER_LABELS[PROFANITY_CHECK]
PROFANITY_CHECK_FILES = ("vectorizer.joblib", "model.joblib")


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}


# --------------------------------------------------------------------------------------------------------------------
# Tiny random models


def train_t5_tokenizer(texts: Iterable[str], vocab_size: int, model_max_length: int,
                       extra_tokens: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """A T5-style tokenizer (<pad>=0, </s>=1, <unk>=2, then ``extra_tokens`` such as T5's ``<extra_id_N>``
    sentinels, </s> appended, SentencePiece-like ``▁`` word starts).

    BPE, not T5's Unigram: the ``tokenizers`` Unigram trainer gives a different vocabulary on each run (parallel EM
    and ties broken by hash order), which changed the base model's hash and every score after it on each clean
    rebuild. The BPE trainer breaks ties by token id and is the same on every run (tests/test_modeling.py).
    """
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>", *extra_tokens],
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    # Extra tokens are special: never split, and dropped by decode(skip_special_tokens=True) like T5's sentinels.
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   extra_special_tokens=list(extra_tokens), model_max_length=model_max_length)


def train_roberta_tokenizer(texts: Iterable[str], vocab_size: int,
                            model_max_length: int) -> PreTrainedTokenizerFast:
    """A RoBERTa-style byte-level BPE tokenizer (<s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4)."""
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                   model_max_length=model_max_length)


def build_tiny_t5(cfg: TinyT5Params, tokenizer: PreTrainedTokenizerBase, seed: int,
                  dropout: float | None = None) -> T5ForConditionalGeneration:
    """A FLAN-T5-shaped model (gated-GELU, T5 v1.1 output scaling) with random weights.

    (transformers 5 always ties a newly built T5's head to its embeddings; the real FLAN-T5 checkpoints keep their
    own lm_head when loaded, which makes no difference to how this project uses the tiny model.)

    A small ``initializer_factor`` keeps the initial logits small, so the first losses sit near ln(vocab) instead
    of ~30 with T5's default initialisation at this width. ``dropout``: T5's ``dropout_rate`` (None: T5's 0.1).
    """
    config = T5Config(**({} if dropout is None else {"dropout_rate": dropout}),
        vocab_size=len(tokenizer), d_model=cfg.d_model, d_ff=cfg.d_ff, d_kv=cfg.d_kv, num_layers=cfg.num_layers,
        num_decoder_layers=cfg.num_layers, num_heads=cfg.num_heads, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False, initializer_factor=cfg.initializer_factor,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    if cfg.attention_initializer_factor is not None:
        _init_attention_scores(model, cfg.attention_initializer_factor)
    if cfg.neighbour_bias is not None:
        _init_neighbour_heads(model, cfg.neighbour_bias)
    return model


@torch.no_grad()
def _init_neighbour_heads(model: T5ForConditionalGeneration, bias: float) -> None:
    """Encoder head 0 starts attending to the previous token and head 1 to the next: their relative-position bias
    (shared by every encoder layer, held by the first) gets ``bias`` in the bucket of distance -1 / +1. T5's
    bidirectional buckets (``T5Attention._relative_position_bucket``): distance -1 is bucket 1, +1 is bucket
    num_buckets / 2 + 1. A model with one head gets the previous-token head only."""
    attention = model.encoder.block[0].layer[0].SelfAttention
    weight = attention.relative_attention_bias.weight  # (num_buckets, num_heads)
    weight[1, 0] = bias
    if weight.shape[1] > 1:
        weight[attention.relative_attention_num_buckets // 2 + 1, 1] = bias


@torch.no_grad()
def _init_attention_scores(model: T5ForConditionalGeneration, factor: float) -> None:
    """Query, key and relative-position weights drawn as T5 draws them (``T5PreTrainedModel._init_weights``,
    transformers/models/t5/modeling_t5.py ~607-616) but at ``factor``: the attention scores are products of these,
    so a small initialisation starts every head near uniform attention with little gradient to leave it."""
    d_model, d_kv = model.config.d_model, model.config.d_kv
    for module in model.modules():
        if isinstance(module, T5Attention):
            module.q.weight.normal_(0.0, factor * (d_model * d_kv) ** -0.5)
            module.k.weight.normal_(0.0, factor * d_model ** -0.5)
            if module.has_relative_attention_bias:
                module.relative_attention_bias.weight.normal_(0.0, factor * d_model ** -0.5)


def build_tiny_roberta(cfg: TinyRobertaParams, tokenizer: PreTrainedTokenizerBase, max_tokens: int,
                       seed: int) -> RobertaForSequenceClassification:
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
        max_position_embeddings=max_tokens + 2,  # RoBERTa offsets positions by padding_idx + 1
        pad_token_id=tokenizer.pad_token_id, bos_token_id=0, eos_token_id=2, num_labels=len(CLASSIFIER_LABELS),
        id2label=dict(enumerate(CLASSIFIER_LABELS)), label2id={l: i for i, l in enumerate(CLASSIFIER_LABELS)},
    )
    torch.manual_seed(seed)
    return RobertaForSequenceClassification(config)


# --------------------------------------------------------------------------------------------------------------------
# Materialising the base models into models/


def _from_pretrained(loader, name: str, revision: str, **kwargs):
    """Load from a local folder or the Hub (pinned revision) with an actionable error.

    ``use_safetensors=None`` takes ``model.safetensors`` when the revision has it and ``pytorch_model.bin``
    otherwise. ``True`` fails on a pinned commit without safetensors and, at ``main``, would load a conversion the
    Hub's bot made (``modeling_utils.py`` ~685, ``auto_conversion``) instead of the files the revision names.
    """
    # Otherwise a .bin load starts a background request asking the Hub's bot to convert the repository (~720).
    os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")
    local = Path(name).is_dir()
    try:
        return loader.from_pretrained(name, revision=None if local else revision, use_safetensors=None,
                                      trust_remote_code=False, **kwargs)
    except Exception as err:  # hub, network and file errors alike
        where = "folder" if local else f"Hugging Face Hub (revision {revision})"
        raise ModelError(f"could not load {name!r} from the {where}: {err}. Offline? Use a local folder or the "
                         f"tiny random models (model.name: {TINY_T5}, classifier.name: {TINY_ROBERTA}).") from None


def _tokenizer_from_pretrained(name: str, revision: str) -> PreTrainedTokenizerBase:
    local = Path(name).is_dir()
    try:
        return AutoTokenizer.from_pretrained(name, revision=None if local else revision, trust_remote_code=False)
    except Exception as err:
        raise ModelError(f"could not load the tokenizer of {name!r}: {err}") from None


def _source_of(name: str, tiny: str) -> str:
    return "tiny-random" if name == tiny else ("local" if Path(name).is_dir() else "hub")


def materialize_summarizer(name: str, revision: str, tiny: TinyT5Params, train_texts: Iterable[str],
                           max_source_tokens: int, seed: int, out_dir: str | Path) -> dict:
    """Save the base seq2seq model and its tokenizer to ``out_dir``; return what was loaded."""
    if name == TINY_T5:
        tokenizer = train_t5_tokenizer(train_texts, tiny.vocab_size, max_source_tokens)
        model = build_tiny_t5(tiny, tokenizer, seed)
    else:
        tokenizer = _tokenizer_from_pretrained(name, revision)
        model = _from_pretrained(AutoModelForSeq2SeqLM, name, revision)
    return _save(model, tokenizer, name, revision, _source_of(name, TINY_T5), out_dir)


def materialize_classifier(name: str, revision: str, tiny: TinyRobertaParams, train_texts: Iterable[str],
                           max_tokens: int, toxic_label: str, nontoxic_label: str, seed: int,
                           out_dir: str | Path) -> dict:
    """Save the toxicity classifier and its tokenizer to ``out_dir``; check it has both labels params name."""
    if name == PROFANITY_CHECK:
        return materialize_profanity_check(toxic_label, nontoxic_label, out_dir)
    if name == TINY_ROBERTA:
        tokenizer = train_roberta_tokenizer(train_texts, tiny.vocab_size, max_tokens)
        model = build_tiny_roberta(tiny, tokenizer, max_tokens, seed)
    else:
        tokenizer = _tokenizer_from_pretrained(name, revision)
        model = _from_pretrained(AutoModelForSequenceClassification, name, revision)
    # RoBERTa's learned positions start after its padding index (2 of max_position_embeddings are never used).
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None and max_tokens > positions - 2:
        raise ModelError(f"params.yaml: classifier.max_tokens must be at most {positions - 2} for {name} "
                         f"(max_position_embeddings {positions}), got {max_tokens}")
    labels = set(model.config.id2label.values())
    for key, label in (("toxic_label", toxic_label), ("nontoxic_label", nontoxic_label)):
        if label not in labels:
            raise ModelError(f"params.yaml: classifier.{key} must be one of the classifier's labels "
                             f"{sorted(labels)}, got {label!r} ({name})")
    return _save(model, tokenizer, name, revision, _source_of(name, TINY_ROBERTA), out_dir)


def materialize_profanity_check(toxic_label: str, nontoxic_label: str, out_dir: str | Path) -> dict:
    """Copy alt-profanity-check's vectorizer and SVM (joblib files inside its installed package) to ``out_dir``.

    Read from the package's folder without importing it: its ``__init__`` loads both models at import time.
    """
    spec = importlib.util.find_spec("profanity_check")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"classifier.name {PROFANITY_CHECK} needs the alt-profanity-check package "
                         "(pip install -r requirements.txt)")
    data = Path(spec.submodule_search_locations[0]) / "data"
    for key, label in (("toxic_label", toxic_label), ("nontoxic_label", nontoxic_label)):
        if label not in PROFANITY_CHECK_LABELS:
            raise ModelError(f"params.yaml: classifier.{key} must be one of the classifier's labels "
                             f"{sorted(PROFANITY_CHECK_LABELS)}, got {label!r} ({PROFANITY_CHECK})")
    info = {"name": PROFANITY_CHECK, "revision": importlib.metadata.version(PROFANITY_CHECK),
            "source": "package", "architecture": "TfidfVectorizer + CalibratedClassifierCV(LinearSVC)",
            "labels": list(PROFANITY_CHECK_LABELS)}
    with atomic_dir(out_dir) as partial:
        for name in PROFANITY_CHECK_FILES:
            shutil.copyfile(data / name, partial / name)
        write_json(partial / MODEL_INFO, info)
    log.info("saved %s %s to %s", PROFANITY_CHECK, info["revision"], out_dir)
    return info


def _save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, name: str, revision: str, source: str,
          out_dir: str | Path) -> dict:
    info = {"name": name, "revision": revision if source == "hub" else None, "source": source,
            "architecture": type(model).__name__, "parameters": count_parameters(model)["total"],
            "vocab_size": len(tokenizer)}
    with atomic_dir(out_dir) as partial:
        model.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
        # Travels with the model, so the app can tell a tiny random model (meaningless output) from a real one.
        write_json(partial / MODEL_INFO, info)
    log.info("saved %s (%s, %s parameters) to %s", name, source, f"{info['parameters']:,}", out_dir)
    return info


# --------------------------------------------------------------------------------------------------------------------
# Loading for use


def _load_saved(what: str, path: Path, load):
    """Run ``load`` on a saved model folder; a folder without weights or a broken file becomes one message."""
    if not path.is_dir():
        raise ModelError(f"no {what} at {path}: run the stage that writes it (dvc repro)")
    try:
        return load()
    except (OSError, ValueError, RuntimeError) as err:  # missing weights, corrupt safetensors, wrong architecture
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"could not load the {what} saved at {path}: {first_line}. "
                         "Rerun the stage that writes it (dvc repro), or dvc checkout.") from None


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    return _load_saved("tokenizer", Path(path), lambda: AutoTokenizer.from_pretrained(str(path)))


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").exists()


def keep_own_head(model: PreTrainedModel) -> None:
    """Stop a later ``tie_weights()`` from replacing a model's own output layer with its input embedding.

    transformers 5.23 sets every T5Config's ``tie_word_embeddings`` to True (``models/t5/configuration_t5.py`` ~83).
    ``from_pretrained`` keeps a checkpoint's own ``lm_head`` when it differs from the embedding (FLAN-T5 v1.1, base
    to XXL, has one), but a later ``tie_weights()`` ties it, and accelerate's FSDP2 preparation calls that with
    ``fsdp_cpu_ram_efficient_loading`` (``accelerate/utils/fsdp_utils.py`` ~846, ~915), which both shipped FSDP
    configs set: training would silently start from the wrong output layer. Call after loading, before training.
    """
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    if head is not None and embedding is not None and head.weight.data_ptr() != embedding.weight.data_ptr():
        model.config.tie_word_embeddings = False


def resolve_attention(value: str, device: str) -> str:
    """``model.attention``: ``auto`` is what was measured faster on the device — sdpa on a CPU, and sdpa (untimed
    there yet: ``make gpu-check``) on CUDA and MPS.

    Measured on this project's 2-core CPU (torch 2.13, transformers 5.23, greedy, identical tokens): eager ran at
    0.96x SDPA's speed on FLAN-T5-base's architecture (batch 16; 0.77x at batch 64:
    benchmarks/generation_backends.py), 0.96x on flan-t5-small's and 0.89x on the learning profile's small T5
    (benchmarks/attention.py). T5 passes its position bias as an additive mask, so SDPA takes its math kernel on a
    CPU, yet that kernel is still no slower than eager here.
    """
    return "sdpa" if value == "auto" else value  # the same on every device until a GPU measures otherwise


def load_summarizer(path: str | Path, base_path: str | Path | None = None, *, device: str = "cpu",
                    dtype: torch.dtype | None = None, attention: str = "auto") -> PreTrainedModel | PeftModel:
    """A saved seq2seq model, or ``base_path`` + the PEFT adapter saved at ``path``; in eval mode on ``device``,
    with ``attention`` (``model.attention``) as transformers' attn_implementation."""
    path = Path(path)
    kwargs = dict(dtype=dtype, use_safetensors=True, attn_implementation=resolve_attention(attention, device))
    if is_adapter(path):
        if base_path is None:
            raise ModelError(f"{path} holds an adapter: its base model folder is needed too")
        base = _load_saved("model", Path(base_path), lambda: AutoModelForSeq2SeqLM.from_pretrained(
            str(base_path), **kwargs))
        model = _load_saved("adapter", path, lambda: PeftModel.from_pretrained(base, str(path)))
    else:
        model = _load_saved("model", path, lambda: AutoModelForSeq2SeqLM.from_pretrained(str(path), **kwargs))
    return model.to(device).eval()


def load_classifier(path: str | Path, *,
                    device: str = "cpu") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    path = Path(path)
    model = _load_saved("classifier", path, lambda: AutoModelForSequenceClassification.from_pretrained(
        str(path), use_safetensors=True))
    return model.to(device).eval(), load_tokenizer(path)
