"""A small T5 pretrained here, on the train dialogues, with objectives that are not summarization.

The learning profile's "base" model. FLAN-T5 arrives knowing English and many instruction tasks but, as far as this
project is concerned, no DialogSum summary; a random model knows nothing, so fine-tuning it measures training from
scratch, and LoRA or prompt tuning (which keep the base frozen) have nothing to adapt. A model pretrained here sits in
between: it has read the train dialogues, never a summary, so zero-shot prompting, full fine-tuning, LoRA and prompt
tuning do to it, in miniature, what they do to FLAN-T5.

Objectives (``model.pretrain.objectives``), each giving one example per train dialogue:
- ``span_corruption``: T5's denoising (Raffel et al., 2020, §3.1.4): about ``noise_density`` of the dialogue's tokens,
  in spans of mean length ``mean_span_length``, replaced by sentinels in the input; the target lists the spans.
- ``denoise``: BART's text infilling (Lewis et al., 2020, §2.2): the same masked spans, each replaced by one and the
  same mask token (``<extra_id_0>``), and the target is the dialogue itself (its first ``denoise_target_tokens``
  tokens); ``denoise_source_tokens`` cuts the input to the dialogue's first tokens too. Reproducing its input
  rewards a decoder that reads the encoder token by token, but T5 has no absolute positions, so it must first learn
  to find its place in the input by content. On whole dialogues (~200 tokens) the 1.4 M-parameter T5 had not
  learned that after 800 steps (it predicted its own dialogue no better than another one's); on 32-token windows it
  learns it within minutes, and only a base that copies gave fine-tuned summaries that differ (docs/results.md).
  Span corruption's short targets let a small model lower its loss with the decoder alone, and at this scale its
  encoder collapsed (docs/results.md).
- ``topic``: DialogSum's ``topic`` field (one to three words: "job interview") as an instruction task. It teaches
  the model to answer an instruction about a whole dialogue with a few words, not to write a summary.

Training reuses the fine-tuning code (``training.train``, method ``full``): the same Trainer, loss, label padding,
checkpoints and DVCLive curve.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, T5Config

from summarizer.config import FullParams, PretrainParams, TinyT5Params, TrainingParams
from summarizer.device import Runtime
from summarizer.errors import ModelError
from summarizer.io import atomic_write_text, write_json, write_jsonl
from summarizer.modeling import (MODEL_INFO, build_tiny_t5, count_parameters, load_summarizer,
                                 train_t5_tokenizer)
from summarizer.prompts import build_prompt
from summarizer.training import LABEL_PAD, TrainRequest, train

log = logging.getLogger(__name__)

PRETRAINED_T5 = "pretrain-small-t5"
SOURCE = "pretrained-here"
# Sentinels <extra_id_0> ... in the tokenizer: at most this many spans per example (T5 has 100).
NUM_SENTINELS = 64
# The copy probe's window when pretraining denoised whole dialogues (denoise_source_tokens null).
COPY_PROBE_TOKENS = 32
T5_DROPOUT = T5Config().dropout_rate  # 0.1: what the base is fine-tuned with


def sentinel_tokens(n: int = NUM_SENTINELS) -> list[str]:
    return [f"<extra_id_{i}>" for i in range(n)]


def _random_partition(total: int, parts: int, rng: random.Random) -> list[int]:
    """``total`` split into ``parts`` positive integers, uniformly over the cut points."""
    cuts = sorted(rng.sample(range(1, total), parts - 1)) if parts > 1 else []
    bounds = [0, *cuts, total]
    return [b - a for a, b in zip(bounds, bounds[1:])]


def span_corruption(ids: Sequence[int], sentinels: Sequence[int], eos: int, *, noise_density: float,
                    mean_span_length: float, rng: random.Random) -> tuple[list[int], list[int]]:
    """T5's span corruption of one token sequence (without EOS): (input ids, target ids), both ending in EOS.

    The input keeps the unmasked tokens with one sentinel per masked span; the target is each sentinel followed by
    the span it replaced (``random_spans_noise_mask`` in T5's preprocessors, as a plain function).
    """
    n = len(ids)
    if n < 2:
        return [*ids, eos], [eos]
    num_noise = min(max(1, round(n * noise_density)), n - 1)
    num_spans = min(max(1, round(num_noise / mean_span_length)), len(sentinels), num_noise, n - num_noise)
    noise_lengths = _random_partition(num_noise, num_spans, rng)
    keep_lengths = _random_partition(n - num_noise, num_spans, rng)
    source, target, pos = [], [], 0
    for i, (keep, noise) in enumerate(zip(keep_lengths, noise_lengths)):
        source += list(ids[pos:pos + keep])
        pos += keep
        source.append(sentinels[i])
        target += [sentinels[i], *ids[pos:pos + noise]]
        pos += noise
    return source + [eos], target + [eos]


def pretraining_features(rows: Sequence[dict], tokenizer: PreTrainedTokenizerBase, params: PretrainParams, *,
                         max_source_tokens: int, seed: int) -> list[dict]:
    """One example per dialogue and objective, shuffled: ``{"input_ids", "labels", "objective"}``."""
    rng = random.Random(seed)
    out = []
    if "span_corruption" in params.objectives:
        sentinels = tokenizer.convert_tokens_to_ids(sentinel_tokens())
        # Room for the sentinels and EOS inside the input budget.
        budget = max_source_tokens - math.ceil(max_source_tokens * params.noise_density / params.mean_span_length) - 1
        encoded = tokenizer([r["dialogue"] for r in rows], add_special_tokens=False, truncation=True,
                            max_length=budget)["input_ids"]
        for ids in encoded:
            source, target = span_corruption(ids, sentinels, tokenizer.eos_token_id,
                                             noise_density=params.noise_density,
                                             mean_span_length=params.mean_span_length, rng=rng)
            out.append({"input_ids": source, "labels": target, "objective": "span_corruption"})
    if "denoise" in params.objectives:
        mask = [tokenizer.convert_tokens_to_ids(sentinel_tokens(1)[0])] * NUM_SENTINELS
        # A short window (denoise_source_tokens) is what lets a model this small learn to copy (module docstring).
        cap = max_source_tokens - 1 if params.denoise_source_tokens is None else params.denoise_source_tokens
        encoded = tokenizer([r["dialogue"] for r in rows], add_special_tokens=False, truncation=True,
                            max_length=min(cap, max_source_tokens - 1))["input_ids"]
        for ids in encoded:
            source, _ = span_corruption(ids, mask, tokenizer.eos_token_id, noise_density=params.noise_density,
                                        mean_span_length=params.mean_span_length, rng=rng)
            target = [*ids[:params.denoise_target_tokens], tokenizer.eos_token_id]
            out.append({"input_ids": source, "labels": target, "objective": "denoise"})
    if "topic" in params.objectives:
        prompts = [build_prompt(r["dialogue"], params.topic_template) for r in rows]
        sources = tokenizer(prompts, truncation=True, max_length=max_source_tokens)["input_ids"]
        targets = tokenizer(text_target=[r["topic"] for r in rows], truncation=True, max_length=32)["input_ids"]
        out += [{"input_ids": s, "labels": t, "objective": "topic"} for s, t in zip(sources, targets)]
    rng.shuffle(out)
    return out


def pretrain_small_t5(arch: TinyT5Params, params: PretrainParams, *, train_rows: Sequence[dict],
                      validation_rows: Sequence[dict], max_source_tokens: int, seed: int, runtime: Runtime,
                      out_dir: str | Path, work_dir: str | Path, live_dir: str | Path,
                      attention: str = "auto") -> dict:
    """Build the tokenizer and a random T5, pretrain it on the objectives, save it to ``out_dir``; return its info.

    ``work_dir`` holds the initial model, the features and the checkpoints (a rerun resumes from them).
    """
    work = Path(work_dir)
    # Dialogues and topics only: the tokenizer, like the model, never sees a summary.
    texts = [r["dialogue"] for r in train_rows] + [r["topic"] for r in train_rows]
    tokenizer = train_t5_tokenizer(texts, arch.vocab_size, max_source_tokens, extra_tokens=sentinel_tokens())
    model = build_tiny_t5(arch, tokenizer, seed, dropout=params.dropout)
    init_dir = work / "init"
    model.save_pretrained(init_dir, safe_serialization=True)
    tokenizer.save_pretrained(init_dir)
    features_dir = work / "features"
    for split, rows in (("train", train_rows), ("validation", validation_rows)):
        feats = pretraining_features(rows, tokenizer, params, max_source_tokens=max_source_tokens, seed=seed)
        write_jsonl(features_dir / f"{split}.jsonl", feats)
    hp = FullParams(optimizer=params.optimizer, batch_size=params.batch_size, grad_accum_steps=1,
                    epochs=params.epochs, max_steps=params.max_steps, warmup_ratio=params.warmup_ratio,
                    weight_decay=params.weight_decay, activation_checkpointing=False)
    shared = TrainingParams(eval_steps=None, save_steps=params.save_steps, save_total_limit=1,
                            logging_steps=params.logging_steps, group_by_length=True, dropout_rate=None,
                            eval_batch_size=32, num_processes=1, accelerate_config=None)
    request = TrainRequest(method="full", lr=params.lr, hp=hp, shared=shared, seed=seed, attention=attention)
    summary = train(request, base_dir=init_dir, features_dir=features_dir, out_dir=out_dir,
                    checkpoint_dir=work / "checkpoints", live_dir=live_dir, runtime=runtime)
    # Pretraining's dropout is pretraining's: the base is fine-tuned with T5's own (0.1), as FLAN-T5 is.
    config_file = Path(out_dir) / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config["dropout_rate"] != T5_DROPOUT:
        atomic_write_text(config_file, json.dumps(config | {"dropout_rate": T5_DROPOUT}, indent=2) + "\n")
    probe = copy_probe(load_summarizer(out_dir, device=runtime.device), tokenizer,
                       [r["dialogue"] for r in validation_rows[:params.probe_dialogues]],
                       params.denoise_source_tokens or COPY_PROBE_TOKENS)
    info = {"name": PRETRAINED_T5, "revision": None, "source": SOURCE, "architecture": type(model).__name__,
            "parameters": count_parameters(model)["total"], "vocab_size": len(tokenizer),
            "pretraining": {"objectives": list(params.objectives), "examples": summary["steps"] * params.batch_size,
                            **{k: summary[k] for k in ("steps", "epochs", "learning_rate", "train_loss_first",
                                                       "train_loss_last", "eval_loss", "train_runtime_s")}},
            "copy": probe | {"min_copy_gain": params.min_copy_gain}}
    write_json(Path(out_dir) / MODEL_INFO, info)
    shutil.rmtree(work, ignore_errors=True)  # the initial model and the features: only the result is kept
    log.info("pretrained %s: %s parameters, %d steps in %.0f s, validation loss %.3f, copy gain %.3f "
             "(%.3f given the window, %.3f given another)", PRETRAINED_T5, f"{info['parameters']:,}",
             summary["steps"], summary["train_runtime_s"], summary["eval_loss"], probe["copy_gain"],
             probe["copy_accuracy"], probe["copy_accuracy_other"])
    return info


# --------------------------------------------------------------------------------------------------------------------
# Has the base learned to read its input? (the copy probe, and the gate base_model applies to it)


def copy_windows(tokenizer: PreTrainedTokenizerBase, dialogues: Sequence[str], tokens: int) -> list[list[int]]:
    """Each dialogue's first ``tokens`` tokens (no EOS): the denoising pretraining's windows, unmasked."""
    return tokenizer(list(dialogues), add_special_tokens=False, truncation=True, max_length=tokens)["input_ids"]


@torch.no_grad()
def copy_accuracy(model: PreTrainedModel, inputs: Sequence[Sequence[int]], targets: Sequence[Sequence[int]],
                  eos: int, pad: int, batch_size: int = 64) -> float:
    """The share of target tokens (EOS included) that are the model's argmax, teacher-forced, given each input
    (+ EOS). Padding carries no label (``LABEL_PAD``), so batching does not change the figure."""
    model.eval()
    device = next(model.parameters()).device
    hits = total = 0
    for start in range(0, len(inputs), batch_size):
        sources = [[*s, eos] for s in inputs[start:start + batch_size]]
        labels = [[*t, eos] for t in targets[start:start + batch_size]]
        width, label_width = max(map(len, sources)), max(map(len, labels))
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in sources], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sources], device=device)
        gold = torch.tensor([t + [LABEL_PAD] * (label_width - len(t)) for t in labels], device=device)
        logits = model(input_ids=ids, attention_mask=mask, labels=gold).logits
        scored = gold != LABEL_PAD
        hits += ((logits.argmax(-1) == gold) & scored).sum().item()
        total += scored.sum().item()
    return hits / total


def copy_probe(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dialogues: Sequence[str],
               tokens: int) -> dict:
    """Does the model read its input? Teacher-forced accuracy on each dialogue's first ``tokens`` tokens given that
    window (``copy_accuracy``) and given the *next* dialogue's window instead (``copy_accuracy_other``: what the
    decoder predicts from the language alone). ``copy_gain``, their difference, is what reading adds: about 0 for a
    model that writes the dialogues' language without looking at its input (fine-tuned, such a base wrote one
    summary for every dialogue: docs/results.md)."""
    if len(dialogues) < 2:
        raise ValueError("the copy probe needs at least two dialogues (one is the other's control)")
    windows = copy_windows(tokenizer, dialogues, tokens)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    own = copy_accuracy(model, windows, windows, eos, pad)
    other = copy_accuracy(model, windows[1:] + windows[:1], windows, eos, pad)
    return {"tokens": tokens, "windows": len(windows), "copy_accuracy": round(own, 4),
            "copy_accuracy_other": round(other, 4), "copy_gain": round(own - other, 4)}


def check_copy(probe: dict, min_gain: float | None, on_low: str) -> str | None:
    """The gate on a pretrained base: ``None`` when it reads its input well enough (or ``min_gain`` is None), else
    the problem in one line, raised as a :class:`ModelError` (``on_low`` "error") or returned to be logged loudly
    ("warn")."""
    if min_gain is None or probe["copy_gain"] >= min_gain:
        return None
    problem = (f"the pretrained base has not learned to copy its input: on {probe['windows']} validation windows of "
               f"{probe['tokens']} tokens it predicts {probe['copy_accuracy']:.3f} of a window given that window and "
               f"{probe['copy_accuracy_other']:.3f} given another dialogue's, a copy gain of {probe['copy_gain']:.3f} "
               f"< model.pretrain.min_copy_gain {min_gain}; fine-tuned, such a base writes nearly one summary for "
               "every dialogue (docs/results.md). Start the attention as the learning profile does "
               "(model.tiny.attention_initializer_factor 1.0, neighbour_bias 4.0, model.pretrain.dropout 0.0: the "
               "copy then came on 8 seeds of 8), try another seed or pretrain longer (model.pretrain.max_steps); or "
               "set model.pretrain.on_low_copy: warn to go on anyway")
    if on_low == "error":
        raise ModelError(problem)
    return problem
