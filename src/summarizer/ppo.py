"""PPO detoxification with trl 0.11.4, the last trl whose PPOTrainer supports encoder-decoder models.

**The reference is the LoRA summarizer PPO starts from.** trl marks a policy built over a ``PeftModel`` as PEFT and
then computes the reference log-probs with the adapter *disabled* (``trl/models/modeling_base.py`` ~255,
``trl/trainer/ppo_trainer.py`` ~258 and ~756), ignoring any ``ref_model``. So :func:`load_policy` merges the
fine-tuned LoRA adapter into the base weights and puts a *fresh* LoRA adapter (same r, alpha and target modules,
``B`` initialised to zero) on top, which is what PPO trains: with the adapter disabled the model *is* the LoRA
summarizer, one copy of the weights serves policy and reference, and before the first update the two are equal
(KL 0, tested).

**Responses keep the decoder start token.** trl feeds each response as ``decoder_input_ids`` and scores token
``t + 1`` from position ``t`` (``ppo_trainer.py`` ~961-967, ~1037), so index 0 must be the start token the sampler
began from; the log-probs trl computes then equal the sampler's (tested). trl leaves the first generated token out
of the loss and the KL (``start = 1`` in ``batched_forward_pass``, ~1037): a quirk of trl kept as is.

Queries go through ``PPOTrainer.generate``'s list path, which pads, moves them to the model's device and batches.
The reward of a sampled summary is the classifier's logit margin ``logit[nontoxic] − logit[toxic]``
(``toxicity.ToxicityScorer.reward``), monotone in the reported P(toxic). What is saved is the LoRA
summarizer with the PPO adapter merged in: a whole model, loaded like ``full`` (the value head exists for training
alone).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForSeq2SeqLM, PreTrainedTokenizerBase
import summarizer.trl_compat  # noqa: F401, I001  (before trl: corrects trl's optional-package flags)
from trl import AutoModelForSeq2SeqLMWithValueHead, PPOConfig, PPOTrainer

from summarizer.config import PpoParams
from summarizer.device import Runtime, resolve_batch_size
from summarizer.io import LOSS_DIGITS, atomic_dir, rounded
from summarizer.modeling import count_parameters, keep_own_head
from summarizer.prompts import build_prompt
from summarizer.scoring import bootstrap_ci, bootstrap_difference
from summarizer.toxicity import REWARD

log = logging.getLogger(__name__)


def select_prompts(rows: Sequence[dict], template: str, min_chars: int, max_chars: int, seed: int) -> list[str]:
    """Train dialogues with ``min_chars < len <= max_chars``, wrapped in the instruction template, shuffled by seed."""
    prompts = [build_prompt(r["dialogue"], template) for r in rows if min_chars < len(r["dialogue"]) <= max_chars]
    random.Random(seed).shuffle(prompts)
    return prompts


def split_heldout(prompts: Sequence[str], heldout: int, batch_size: int) -> tuple[list[str], list[str]]:
    """(training prompts, held-out prompts): the last ``heldout`` prompts are never trained on."""
    if len(prompts) - heldout < batch_size:
        raise ValueError(f"{len(prompts)} PPO prompts leave fewer than ppo.batch_size={batch_size} for training "
                         f"after ppo.heldout_prompts={heldout}: lower ppo.heldout_prompts or widen "
                         f"ppo.prompt_min_chars/prompt_max_chars")
    return list(prompts[:len(prompts) - heldout]), list(prompts[len(prompts) - heldout:])


def load_policy(base_dir: str | Path, adapter_dir: str | Path, attention: str | None = None, *,
                tokenizer: PreTrainedTokenizerBase | None = None,
                start_dir: str | Path | None = None) -> AutoModelForSeq2SeqLMWithValueHead:
    """The policy: base + fine-tuned LoRA adapter merged, a fresh trainable LoRA adapter on top, a value head.

    Weights are fp32 whatever the checkpoint's dtype (transformers 5 loads ``dtype="auto"``); mixed precision is
    applied by autocast (:func:`make_trainer`). ``attention``: transformers' attn_implementation (eager, sdpa;
    None: its default). ``start_dir``: also save the merged model there, with ``tokenizer`` — the policy PPO
    starts from (its fresh adapter is the identity), saved exactly as :func:`save_policy` saves where it ends, so
    that toxicity before and after PPO compares two models of one representation (the LoRA variant itself is the
    base plus an fp32 adapter, which in bf16 gives other logits than the same weights merged).
    """
    config = AutoConfig.from_pretrained(str(base_dir))
    train_dropout = getattr(config, "dropout_rate", None)
    if train_dropout is not None:
        config.dropout_rate = 0.0  # T5's attention applies it functionally, out of reach of disable_dropout
    base = AutoModelForSeq2SeqLM.from_pretrained(str(base_dir), config=config, dtype=torch.float32,
                                                 use_safetensors=True, attn_implementation=attention)
    keep_own_head(base)
    summarizer = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    if start_dir is not None:
        if tokenizer is None:
            raise ValueError("start_dir needs the tokenizer to save with the model")
        save_whole_model(summarizer, tokenizer, start_dir, dropout_rate=train_dropout)
    lora = LoraConfig.from_pretrained(str(adapter_dir))
    lora.inference_mode = False
    lora.init_lora_weights = True  # B = 0: the fresh adapter starts as the identity
    policy = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(get_peft_model(summarizer, lora))
    disable_dropout(policy)
    policy.train_dropout_rate = train_dropout  # restored in the saved model's config (save_policy)
    return policy


def disable_dropout(model: torch.nn.Module) -> None:
    """No dropout modules in PPO: trl computes the old log-probs in eval mode and the new ones in train mode
    (``batched_forward_pass`` vs ``train_minibatch``), so dropout alone would make the ratio differ from 1 before
    any update (newer trl disables it likewise, ``disable_dropout_in_model``)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def make_trainer(policy: AutoModelForSeq2SeqLMWithValueHead, tokenizer: PreTrainedTokenizerBase, cfg: PpoParams,
                 runtime: Runtime, seed: int) -> PPOTrainer:
    """A PPOTrainer on ``runtime``: fp32 weights, with bf16/fp16 autocast through accelerate when asked."""
    mixed = {"bf16": "bf16", "fp16": "fp16"}.get(runtime.precision, "no")
    config = PPOConfig(learning_rate=cfg.lr, batch_size=cfg.batch_size, mini_batch_size=cfg.mini_batch_size,
                       ppo_epochs=cfg.ppo_epochs, init_kl_coef=cfg.init_kl_coef, adap_kl_ctrl=cfg.adaptive_kl,
                       target=cfg.target_kl, horizon=cfg.kl_horizon, seed=seed, log_with=None,
                       accelerator_kwargs={"mixed_precision": mixed, "cpu": runtime.device == "cpu"})
    # ref_model=None: the reference is the policy with its adapter disabled (see the module docstring).
    return PPOTrainer(config=config, model=policy, ref_model=None, tokenizer=tokenizer)


def encode_queries(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_source_tokens: int
                   ) -> list[torch.Tensor]:
    return [torch.tensor(ids) for ids in
            tokenizer(list(prompts), truncation=True, max_length=max_source_tokens)["input_ids"]]


def generate_responses(trainer: PPOTrainer, queries: Sequence[torch.Tensor], *, max_new_tokens: int,
                       batch_size: int, top_k: int, top_p: float, min_new_tokens: int = 2) -> list[torch.Tensor]:
    """Sampled responses for ``trainer.step``, each starting with the decoder start token.

    The list path of ``PPOTrainer.generate`` pads the queries, moves them to ``trainer.current_device`` and
    generates ``batch_size`` at a time (``ppo_trainer.py`` ~555-600); for an encoder-decoder it returns the whole
    decoder sequence, start token first, cut after the first EOS.
    """
    tokenizer = trainer.tokenizer
    # At least 2 new tokens: trl leaves the first generated token out of the loss and the KL, and fails on a response
    # with nothing after it (compute_rewards takes the last unmasked position).
    responses = trainer.generate(list(queries), batch_size=batch_size, return_prompt=False, do_sample=True,
                                 top_k=top_k, top_p=top_p, max_new_tokens=max(max_new_tokens, 2),
                                 min_new_tokens=max(min_new_tokens, 2),
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    start_id = trainer.model.pretrained_model.config.decoder_start_token_id
    for response in responses:
        if int(response[0]) != start_id:  # trl's contract for encoder-decoders; fail loudly if it ever changes
            raise RuntimeError(f"a PPO response must start with the decoder start token {start_id}")
    return responses


def _finite(x) -> float:
    value = float(np.mean(x))
    return value if math.isfinite(value) else float("nan")


def run_ppo(trainer: PPOTrainer, prompts: Sequence[str], reward_fn: Callable[[list[str]], Sequence[float]],
            cfg: PpoParams, *, max_source_tokens: int, seed: int, device: str, live=None,
            progress: bool = True) -> list[dict]:
    """``cfg.steps`` PPO steps of ``cfg.batch_size`` prompts (cycling through ``prompts``); per-step statistics.

    The response length limit is drawn uniformly from ``[min_new_tokens, max_new_tokens]`` once per step (one
    generate call serves a whole generation batch); EOS may end a response earlier.
    """
    if len(prompts) < cfg.batch_size:
        raise ValueError(f"PPO needs at least ppo.batch_size={cfg.batch_size} prompts, got {len(prompts)}")
    tokenizer = trainer.tokenizer
    gen_batch = min(cfg.batch_size, resolve_batch_size(cfg.generation_batch_size, device))
    rng = random.Random(seed)
    history = []
    for step in tqdm(range(cfg.steps), desc="PPO", unit="step", disable=not progress):
        batch = [prompts[(step * cfg.batch_size + i) % len(prompts)] for i in range(cfg.batch_size)]
        queries = encode_queries(tokenizer, batch, max_source_tokens)
        responses = generate_responses(trainer, queries, max_new_tokens=rng.randint(cfg.min_new_tokens,
                                                                                    cfg.max_new_tokens),
                                       batch_size=gen_batch, top_k=cfg.top_k, top_p=cfg.top_p)
        texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
        rewards = [torch.tensor(float(r)) for r in reward_fn(texts)]
        stats = trainer.step(queries, responses, rewards)
        row = {
            "step": step + 1,
            "reward_mean": _finite([r.item() for r in rewards]),
            "kl": _finite(stats["objective/kl"]),
            "kl_coef": _finite(stats["objective/kl_coef"]),
            "policy_loss": _finite(stats["ppo/loss/policy"]),
            "value_loss": _finite(stats["ppo/loss/value"]),
            "response_tokens_mean": float(np.mean([len(r) - 1 for r in responses])),  # without the start token
        }
        if live is not None:
            live.step = step + 1
            for key, value in row.items():
                if key != "step":
                    live.log_metric(f"ppo/{key}", value)
            live.next_step()
        row["rewards"] = [r.item() for r in rewards]  # per response, for the first- vs last-quarter comparison
        history.append(row)
        log.info("PPO step %d: reward %.4f, KL %.4f", step + 1, row["reward_mean"], row["kl"])
    return history


def heldout_reward(trainer: PPOTrainer, prompts: Sequence[str], reward_fn: Callable[[list[str]], Sequence[float]],
                   cfg: PpoParams, *, max_source_tokens: int, seed: int, device: str, resamples: int = 1000,
                   confidence: float = 0.95) -> dict:
    """The policy's reward on ``prompts`` (never trained on) before PPO and after: did PPO raise its own reward?

    ``heldout_samples`` summaries per prompt, sampled as in training but with one length limit
    (``max_new_tokens``), from the same seed. "Before" is the policy with its PPO adapter disabled, which is the
    LoRA summarizer PPO started from (and its KL reference): the same model before any update, so the difference is
    exactly 0 then (tested). The difference is paired over prompts: the prompts' own rewards, which vary more than
    PPO moves them, cancel.
    """
    k = cfg.heldout_samples
    queries = [q for q in encode_queries(trainer.tokenizer, prompts, max_source_tokens) for _ in range(k)]
    gen_batch = min(len(queries), resolve_batch_size(cfg.generation_batch_size, device))

    def per_prompt() -> tuple[np.ndarray, float]:
        torch.manual_seed(seed)  # the same draws for both models: equal models give equal samples
        responses = generate_responses(trainer, queries, max_new_tokens=cfg.max_new_tokens, batch_size=gen_batch,
                                       top_k=cfg.top_k, top_p=cfg.top_p)
        texts = trainer.tokenizer.batch_decode(responses, skip_special_tokens=True)
        rewards = np.asarray(reward_fn(texts), dtype=float).reshape(len(prompts), k).mean(axis=1)
        return rewards, float(np.mean([len(r) - 1 for r in responses]))

    # the adapter disabled, as trl does for the KL reference (trl/trainer/ppo_trainer.py ~258, ~756)
    with trainer.optional_peft_ctx():
        before, before_tokens = per_prompt()
    after, after_tokens = per_prompt()
    ci = dict(resamples=resamples, confidence=confidence, seed=seed)
    paired = bootstrap_ci(after - before, **ci)
    return rounded({"prompts": len(prompts), "samples_per_prompt": k,
                    "before": bootstrap_ci(before, **ci), "after": bootstrap_ci(after, **ci),
                    "difference": {"difference": paired["mean"], "ci_low": paired["ci_low"],
                                   "ci_high": paired["ci_high"]},
                    "response_tokens_before": before_tokens, "response_tokens_after": after_tokens}, LOSS_DIGITS)


def run_summary(policy: AutoModelForSeq2SeqLMWithValueHead, history: Sequence[dict], *, prompts_available: int,
                runtime_s: float, runtime: Runtime, seed: int = 0, heldout: dict | None = None) -> dict:
    """metrics/train/ppo.json: what was trained, the first and last step's reward and KL, the reward of the first
    against the last quarter of the steps (did PPO raise its own reward?), and how long it took."""
    params = count_parameters(policy.pretrained_model)
    return {
        "method": "ppo", "steps": len(history), "prompts_available": prompts_available,
        "trainable_parameters": params["trainable"], "total_parameters": params["total"],
        "reward": REWARD,
        **rounded({"reward_first": history[0]["reward_mean"], "reward_last": history[-1]["reward_mean"],
                   "kl_first": history[0]["kl"], "kl_last": history[-1]["kl"],
                   "kl_max": max(h["kl"] for h in history)}, LOSS_DIGITS),
        "reward_quarters": reward_quarters(history, seed=seed),
        "heldout_reward": heldout,  # None when ppo.heldout_prompts is 0
        "train_runtime_s": rounded(runtime_s, 2), "device": runtime.device,
        # fp32 weights; bf16/fp16 means autocast of the forward passes (accelerate's mixed_precision)
        "precision": runtime.precision,
        "weights_dtype": str(next(policy.parameters()).dtype).removeprefix("torch."),
    }


def reward_quarters(history: Sequence[dict], *, resamples: int = 1000, confidence: float = 0.95,
                    seed: int = 0) -> dict:
    """Mean reward per response over the first and the last quarter of the steps (at least one step each), and the
    difference last − first with a bootstrap CI over responses (the two groups are independent samples)."""
    quarter = max(1, len(history) // 4)
    first = [r for h in history[:quarter] for r in h["rewards"]]
    last = [r for h in history[-quarter:] for r in h["rewards"]]
    ci = dict(resamples=resamples, confidence=confidence, seed=seed)
    return rounded({"steps_per_quarter": quarter, "first": bootstrap_ci(first, **ci), "last": bootstrap_ci(last, **ci),
                    "difference": bootstrap_difference(last, first, **ci)}, LOSS_DIGITS)


def save_policy(policy: AutoModelForSeq2SeqLMWithValueHead, tokenizer: PreTrainedTokenizerBase,
                out_dir: str | Path) -> None:
    """The detoxified summarizer as a whole model (fine-tuned LoRA and PPO adapters merged into the base), with
    its tokenizer: loadable like any saved model. Merging consumes the policy's adapter."""
    model = policy.pretrained_model.merge_and_unload()
    save_whole_model(model, tokenizer, out_dir, dropout_rate=getattr(policy, "train_dropout_rate", None))


def save_whole_model(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, out_dir: str | Path, *,
                     dropout_rate: float | None) -> None:
    """Save a merged model and its tokenizer, with the base's ``dropout_rate`` in its config rather than PPO's 0.0
    (a later fine-tuning from it must train with dropout). The modules keep the rate they were built with."""
    during = getattr(model.config, "dropout_rate", None)
    if dropout_rate is not None:
        model.config.dropout_rate = dropout_rate
    try:
        with atomic_dir(out_dir) as partial:
            model.save_pretrained(str(partial), safe_serialization=True)
            tokenizer.save_pretrained(str(partial))
    finally:
        if during is not None:
            model.config.dropout_rate = during
