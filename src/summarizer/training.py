"""One ``Seq2SeqTrainer``-based training function for the three methods; they differ only in how the model is wrapped.

- ``full``: every weight is trained.
- ``lora``: peft LoRA adapters on ``target_modules``; the adapter alone is saved.
- ``prompt_tuning``: peft soft-prompt tuning; the virtual-token embeddings alone are saved.

Batches are padded dynamically (``DataCollatorForSeq2Seq``; labels padded with -100 so padding carries no loss),
optionally grouped by length. Checkpoints go to a folder outside the DVC output (DVC deletes outputs before a
stage runs), so an interrupted stage resumes from its last checkpoint when rerun with the same settings; its
DVCLive curve (a ``persist`` output in dvc.yaml) continues from that step. A finished stage removes its checkpoints.

Under ``accelerate launch`` every rank trains, but only rank 0 logs curves, keeps the checkpoint bookkeeping and
writes the outputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from datasets import Dataset
from dvclive import Live
from peft import LoraConfig, PeftModel, PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model
from transformers import (AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq, PreTrainedModel, PreTrainedTokenizerBase,
                          Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback, set_seed)
from transformers.integrations import DVCLiveCallback
from transformers.pytorch_utils import Conv1D

from summarizer.config import METHODS, LoraParams, MethodParams, PromptTuningParams, TrainingParams
from summarizer.device import Runtime, guard_large_model_on_cpu
from summarizer.errors import ConfigError
from summarizer.flops import ParameterSplit, parameter_split, train_flops_per_example
from summarizer.io import (LOSS_DIGITS, atomic_write_text, partial_dir, publish_dir, read_jsonl, rounded,
                          start_partial_dir, write_json)
from summarizer.modeling import count_parameters, keep_own_head, load_tokenizer, resolve_attention

log = logging.getLogger(__name__)

LABEL_PAD = -100  # ignored by the cross-entropy loss
FINGERPRINT = "run-fingerprint.json"
# The layer types peft's LoRA wraps (peft/tuners/lora/layer.py ~2740, dispatch_default); Conv1D is GPT-2's.
LORA_LAYERS = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d,
               torch.nn.MultiheadAttention, Conv1D)


def check_lora_targets(model: PreTrainedModel, targets: Sequence[str]) -> None:
    """Every name in ``lora.target_modules`` must name layers LoRA can adapt in this model, before training starts.

    peft matches a name to a module whose full name is that name or ends in ``.name`` (``check_target_module_exists``
    in peft/tuners/tuners_utils.py ~2376); it raises a traceback when no name matches, and ignores a misspelt name
    when another one matches. Here each name is checked, and the message lists the names there are.
    """
    adaptable = [name for name, module in model.named_modules() if isinstance(module, LORA_LAYERS)]
    missing = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in adaptable)]
    if missing:
        there = sorted({n.rsplit(".", 1)[-1] for n in adaptable})
        raise ConfigError(f"lora.target_modules: no layer of {type(model).__name__} is named "
                          f"{', '.join(map(repr, missing))}; the layers LoRA can adapt here are named "
                          f"{', '.join(there)}")


def wrap_model(model: PreTrainedModel, method: str, hp: MethodParams,
               tokenizer_path: str | Path) -> PreTrainedModel | PeftModel:
    """The base model as the method trains it."""
    # T5's forward takes **kwargs, so transformers assumes it normalises its loss by `num_items_in_batch` itself
    # (trainer.py ~517): it then skips `loss / grad_accum` (~2105) and multiplies the loss by the number of
    # processes (~2207). T5's loss is a plain mean over the micro-batch, so the logged loss and the gradients came
    # out grad_accum x num_processes too large. Declaring that the model takes no loss kwargs restores the mean.
    model.accepts_loss_kwargs = False
    if method == "full":
        return model
    if method == "lora":
        assert isinstance(hp, LoraParams)
        check_lora_targets(model, hp.target_modules)
        config = LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM, r=hp.r, lora_alpha=hp.alpha,
                            lora_dropout=hp.dropout, target_modules=list(hp.target_modules), bias="none")
    elif method == "prompt_tuning":
        assert isinstance(hp, PromptTuningParams)
        # num_transformer_submodules=1: a soft prompt before the encoder input (Lester et al., 2021). peft's seq2seq
        # default (2) allocates a second num_virtual_tokens block that prompt tuning never uses (peft_model.py ~664,
        # ~2508): it would count as trainable without ever receiving a gradient.
        config = PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=hp.num_virtual_tokens,
                                    num_transformer_submodules=1,
                                    prompt_tuning_init=PromptTuningInit.TEXT,
                                    prompt_tuning_init_text=hp.init_text,
                                    tokenizer_name_or_path=str(tokenizer_path))
    else:
        raise ValueError(f"unknown method {method!r} (one of {', '.join(METHODS)})")
    return get_peft_model(model, config)


def make_collator(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel,
                  runtime: Runtime) -> DataCollatorForSeq2Seq:
    # Multiples of 8 let GPU tensor cores work on whole tiles; on a CPU they would only add padding.
    return DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=LABEL_PAD,
                                  pad_to_multiple_of=8 if runtime.device.startswith("cuda") else None)


@dataclass(frozen=True)
class TrainRequest:
    method: str
    lr: float
    hp: MethodParams
    shared: TrainingParams
    seed: int
    attention: str = "auto"  # model.attention


def fingerprint(request: TrainRequest, inputs: dict[str, str]) -> str:
    """Identifies a training run: a checkpoint is resumed only by a run with the same settings and inputs."""
    blob = json.dumps({"request": asdict(request), "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def last_checkpoint(checkpoint_dir: Path, expected: str) -> str | None:
    """The newest complete checkpoint of the same run, or None (a checkpoint of other settings is discarded).

    A run interrupted while saving leaves a partial checkpoint folder, which transformers' ``get_last_checkpoint``
    would pick and then fail to load. The Trainer writes ``trainer_state.json`` last (``trainer.py`` ~3409), so a
    folder without a readable one is incomplete: it is removed and the previous checkpoint is used.
    """
    if not checkpoint_dir.is_dir():
        return None
    stamp = checkpoint_dir / FINGERPRINT
    if not stamp.exists() or json.loads(stamp.read_text())["fingerprint"] != expected:
        log.info("discarding checkpoints in %s: they belong to other settings", checkpoint_dir)
        shutil.rmtree(checkpoint_dir)
        return None
    found = [p for p in checkpoint_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    for folder in sorted(found, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        try:
            json.loads((folder / "trainer_state.json").read_text())
            return str(folder)
        except (OSError, ValueError):
            log.warning("discarding %s: an incomplete checkpoint (interrupted while saving)", folder)
            shutil.rmtree(folder, ignore_errors=True)
    return None


def load_features(path: str | Path) -> Dataset:
    rows = read_jsonl(path)
    return Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows], "labels": [r["labels"] for r in rows],
                              "length": [len(r["input_ids"]) for r in rows]})


def mean_lengths(features) -> tuple[float, float]:
    """Mean input and target tokens of a tokenized split (no padding: the tokens the model works on)."""
    rows = max(len(features), 1)
    return (sum(len(ids) for ids in features["input_ids"]) / rows,
            sum(len(ids) for ids in features["labels"]) / rows)


def training_flops(split: ParameterSplit, t_in: float, t_out: float, rows: int, hp) -> float:
    """The run's training FLOPs (``flops.train_flops_per_example`` at the mean lengths × the examples it trains
    on). PEFT methods skip the weight gradients of the frozen weights, about a third of the work: an upper bound."""
    examples = hp.max_steps * hp.batch_size * hp.grad_accum_steps if hp.max_steps else rows * hp.epochs
    return train_flops_per_example(split, t_in, t_out) * examples


def training_arguments(request: TrainRequest, runtime: Runtime, checkpoint_dir: Path) -> Seq2SeqTrainingArguments:
    hp, shared = request.hp, request.shared
    per_epoch = shared.eval_steps is None
    save_per_epoch = shared.save_steps is None
    return Seq2SeqTrainingArguments(
        output_dir=str(checkpoint_dir),
        learning_rate=request.lr,
        # adafactor is transformers' Adafactor with a fixed rate (scale_parameter=False, relative_step=False)
        optim=hp.optimizer,
        per_device_train_batch_size=hp.batch_size,
        per_device_eval_batch_size=shared.eval_batch_size,
        gradient_accumulation_steps=hp.grad_accum_steps,
        num_train_epochs=hp.epochs,
        max_steps=hp.max_steps or -1,
        warmup_steps=hp.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps in transformers 5
        weight_decay=hp.weight_decay,
        # The Trainer calls the model's activation_checkpointing_enable (trainer.py ~1503), with use_reentrant=False
        # by default (modeling_utils.py ~3149): that recomputation also reaches PEFT adapters whose input
        # embeddings are frozen, so no enable_input_require_grads is needed. T5 turns its KV cache off meanwhile.
        activation_checkpointing=hp.activation_checkpointing,
        eval_strategy="epoch" if per_epoch else "steps",
        eval_steps=None if per_epoch else shared.eval_steps,
        save_strategy="epoch" if save_per_epoch else "steps",
        save_steps=None if save_per_epoch else shared.save_steps,
        save_total_limit=shared.save_total_limit,
        logging_strategy="steps",
        logging_steps=shared.logging_steps,
        logging_first_step=True,
        train_sampling_strategy="group_by_length" if shared.group_by_length else "random",
        length_column_name="length",
        bf16=runtime.precision == "bf16",
        fp16=runtime.precision == "fp16",
        use_cpu=runtime.device == "cpu",
        seed=request.seed,
        data_seed=request.seed,
        report_to="none",  # the DVCLive callback is added explicitly, configured not to touch dvc.yaml
        remove_unused_columns=False,
        predict_with_generate=False,
        dataloader_pin_memory=runtime.device.startswith("cuda"),
        ddp_find_unused_parameters=False,  # every trainable weight is used in each step (multi-process runs)
        disable_tqdm=False,
    )


def mean_train_loss(history: Sequence[dict], this_run_mean: float, resumed_step: int, last_step: int) -> float:
    """The mean training loss over every step of the run, a resumed one included.

    transformers' ``training_loss`` averages only the steps of the call that finished (``trainer.py`` ~1998:
    the loss summed since ``_initial_global_step``, the resume point). The steps before the resume come from the
    logged losses restored with the checkpoint (each the mean over the steps since the previous log), weighted by
    the steps each covers; steps before the resume that no log covered are left out.
    """
    if resumed_step == 0:
        return this_run_mean
    total, steps, previous = 0.0, 0, 0
    for entry in history:
        if "loss" in entry and entry["step"] <= resumed_step:
            total += entry["loss"] * (entry["step"] - previous)
            steps += entry["step"] - previous
            previous = entry["step"]
    resumed = last_step - resumed_step
    return (total + this_run_mean * resumed) / max(steps + resumed, 1)


def train(request: TrainRequest, *, base_dir: str | Path, features_dir: str | Path, out_dir: str | Path,
          checkpoint_dir: str | Path, live_dir: str | Path, runtime: Runtime,
          callbacks: Sequence[TrainerCallback] = ()) -> dict:
    """Train one method and save the model (full) or adapter (PEFT) to ``out_dir``; return summary metrics.

    ``callbacks`` are added to the Trainer's (the resume test interrupts training with one).
    """
    base_dir, out_dir, checkpoint_dir = Path(base_dir), Path(out_dir), Path(checkpoint_dir)
    tokenizer = load_tokenizer(base_dir)
    # fp32 master weights whatever the checkpoint's dtype: transformers 5 loads dtype="auto", so a bf16 checkpoint
    # would otherwise train in pure bf16. Mixed precision (bf16/fp16 params) is applied by the Trainer's autocast.
    # training.dropout_rate replaces the base's dropout_rate (a config attribute: from_pretrained passes it on)
    dropout = {} if request.shared.dropout_rate is None else {"dropout_rate": request.shared.dropout_rate}
    model = AutoModelForSeq2SeqLM.from_pretrained(str(base_dir), dtype=torch.float32, use_safetensors=True,
                                                  attn_implementation=resolve_attention(request.attention,
                                                                                        runtime.device), **dropout)
    keep_own_head(model)  # FLAN-T5's own lm_head must survive accelerate's FSDP preparation
    # The adapter's random initialisation (LoRA's A) draws from torch's generator before the Trainer seeds it:
    # seeded here, the same seed gives the same adapter whatever ran before in the process.
    set_seed(request.seed)
    split = parameter_split(model)  # of the base: what the forward and backward passes go through
    model = wrap_model(model, request.method, request.hp, base_dir)
    params = count_parameters(model)
    log.info("%s: %s of %s parameters trainable (%.2f%%)", request.method, f"{params['trainable']:,}",
             f"{params['total']:,}", 100 * params["trainable"] / params["total"])
    train_set = load_features(Path(features_dir) / "train.jsonl")
    eval_set = load_features(Path(features_dir) / "validation.jsonl")
    t_in, t_out = mean_lengths(train_set)
    guard_large_model_on_cpu(runtime, params["total"], what=f"finetune {request.method}",
                             flops=training_flops(split, t_in, t_out, len(train_set), request.hp))

    args = training_arguments(request, runtime, checkpoint_dir)  # also starts the process group, if any
    is_main = args.process_index == 0
    inputs = {"base": _dir_digest(base_dir), "features": _dir_digest(Path(features_dir))}
    stamp = fingerprint(request, inputs)
    # Rank 0 discards stale checkpoints and stamps the folder first; the other ranks then find the same checkpoint.
    with args.main_process_first(local=False, desc="checkpoint bookkeeping"):
        resume = last_checkpoint(checkpoint_dir, stamp)
        if is_main:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            write_json(checkpoint_dir / FINGERPRINT, {"fingerprint": stamp})
    resumed_step = int(Path(resume).name.split("-")[-1]) if resume else 0
    if resume:
        log.info("resuming from %s", resume)
    # The validation loss before the first step (at step 0 of the curve): the base model's own, which every method
    # starts from (LoRA's B is zero at init; prompt tuning adds its text-initialised prompt). A resumed run has it
    # in its curve already (trainer.py ~1655 would evaluate again at the resumed step).
    args.eval_on_start = not resume

    live = None
    trainer_callbacks = list(callbacks)
    timer = StepTimer(cuda=runtime.device.startswith("cuda"))
    trainer_callbacks.append(timer)
    if is_main:
        if resume:
            trim_curves(Path(live_dir), resumed_step)  # points logged after the checkpoint are logged again
        # dvcyaml=False and save_dvc_exp=False: otherwise dvclive rewrites dvc.yaml and creates experiments itself.
        # resume=False clears the folder (a fresh run); resume=True appends to the curve kept by DVC (persist).
        live = Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, resume=bool(resume), report=None)
        trainer_callbacks.insert(0, StepAlignedDVCLive(live=live, log_model=False))
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                             processing_class=tokenizer, data_collator=make_collator(tokenizer, model, runtime),
                             callbacks=trainer_callbacks)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    elapsed = time.perf_counter() - start
    history = trainer.state.log_history
    evals = [h for h in history if "eval_loss" in h]
    if evals and evals[-1]["step"] == trainer.state.global_step:
        eval_loss = evals[-1]["eval_loss"]  # the last scheduled validation already saw the final weights
    else:
        eval_loss = trainer.evaluate()["eval_loss"]  # all ranks: evaluation is a collective

    # Saved into a hidden sibling folder that replaces out_dir once complete: a stage killed while saving leaves
    # out_dir absent, never half written.
    partial = start_partial_dir(out_dir) if is_main else partial_dir(out_dir)
    trainer.accelerator.wait_for_everyone()
    # The whole model for `full` (with its tokenizer), only the adapter for PEFT methods. Every rank calls it:
    # sharded (FSDP/DeepSpeed) weights are gathered collectively; only rank 0 writes.
    trainer.save_model(str(partial))
    if is_main:
        live.end()
        (partial / "training_args.bin").unlink(missing_ok=True)  # a pickle; the metrics JSON records the settings
        publish_dir(partial, out_dir)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # a finished stage leaves only its final outputs
    trainer.accelerator.wait_for_everyone()

    train_losses = [h["loss"] for h in history if "loss" in h]
    start_evals = [h["eval_loss"] for h in evals if h["step"] == 0]
    losses = rounded({
        "eval_loss_start": start_evals[0] if start_evals else None,  # before training (None when resumed)
        "train_loss_first": train_losses[0] if train_losses else None,
        "train_loss_last": train_losses[-1] if train_losses else None,
        "train_loss_mean": mean_train_loss(history, result.training_loss, resumed_step,
                                           trainer.state.global_step),
        "eval_loss": eval_loss,
    }, LOSS_DIGITS)
    return rounded({
        "method": request.method,
        "optimizer": request.hp.optimizer,
        "learning_rate": request.lr,
        "trainable_parameters": params["trainable"],
        "total_parameters": params["total"],
        "trainable_share": params["trainable"] / params["total"],
        "steps": trainer.state.global_step,
        "epochs": float(trainer.state.epoch or 0.0),
        **losses,
        "train_runtime_s": rounded(result.metrics.get("train_runtime", elapsed), 2),
        "train_samples_per_s": rounded(result.metrics.get("train_samples_per_second", 0.0), 2),
        # the optimizer steps alone (StepTimer), and the model FLOPs of one example (flops.py) at the set's mean
        # lengths: MFU = flops_per_example × step_samples_per_s × processes / peak
        "step_time_s": rounded(timer.seconds, 2),
        "step_samples_per_s": rounded(timer.steps * request.hp.batch_size * request.hp.grad_accum_steps
                                      / timer.seconds, 2) if timer.seconds else None,
        "mean_input_tokens": rounded(t_in, 1),
        "mean_target_tokens": rounded(t_out, 1),
        "flops_per_example": float(f"{train_flops_per_example(split, t_in, t_out):.4g}"),
        "resumed_from_step": resumed_step,
        "processes": args.world_size,
        "device": runtime.device,
        "precision": runtime.precision,
    })


def trim_curves(live_dir: Path, last_step: int) -> None:
    """Drop the DVCLive points logged after ``last_step`` (the checkpoint a run resumes from): the resumed run
    logs those steps again, and a curve must not hold two values for one step."""
    for tsv in (live_dir / "plots").rglob("*.tsv") if (live_dir / "plots").is_dir() else ():
        lines = tsv.read_text(encoding="utf-8").splitlines()
        if not lines:
            continue
        column = lines[0].split("\t").index("step")
        kept = [lines[0]] + [l for l in lines[1:] if int(l.split("\t")[column]) <= last_step]
        atomic_write_text(tsv, "\n".join(kept) + "\n")


class StepTimer(TrainerCallback):
    """Wall time of the optimizer steps alone (forward, backward, optimizer: from ``on_step_begin`` to
    ``on_step_end``), without the evaluations, checkpoint saves and logging the Trainer runs between steps
    (trainer.py ~1894-1950), which its ``train_samples_per_second`` includes. On CUDA the queue is drained at both
    ends, so the time is the GPU's and not the launch's."""

    def __init__(self, cuda: bool):
        self.cuda, self.seconds, self.steps, self._start = cuda, 0.0, 0, None

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = self._now()

    def on_step_end(self, args, state, control, **kwargs):
        if self._start is not None:
            self.seconds += self._now() - self._start
            self.steps += 1
            self._start = None


class StepAlignedDVCLive(DVCLiveCallback):
    """DVCLive's callback counts log events as steps; plot against the optimizer step instead, so that train and
    validation curves share an axis and a resumed run continues where it stopped."""

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        if self.live is not None:
            self.live.step = state.global_step
        return super().on_log(args, state, control, model=model, logs=logs, **kwargs)


def _dir_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()
