"""PPO detoxification with trl 0.11.4, the last trl whose PPOTrainer supports encoder-decoder models.

The policy is the LoRA-fine-tuned model with a value head (only the adapter and the head train); the frozen
reference is a copy of that starting policy (``create_reference_model``), so the KL penalty keeps the policy near
the summarizer it started from. The reward of a sampled summary is the classifier's raw logit of the non-toxic
label. Only the adapter is saved: the value head exists for training alone.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from summarizer.config import PpoConfig
from summarizer.prompts import build_prompt

log = logging.getLogger(__name__)


def select_prompts(rows: Sequence[dict], template: str, min_chars: int, max_chars: int, seed: int) -> list[str]:
    """Train dialogues with ``min_chars < len <= max_chars``, wrapped in the instruction template, shuffled by seed."""
    prompts = [build_prompt(r["dialogue"], template) for r in rows if min_chars < len(r["dialogue"]) <= max_chars]
    random.Random(seed).shuffle(prompts)
    return prompts


def load_policy(base_dir: str | Path, adapter_dir: str | Path, device: str):
    """(policy with value head over the trainable LoRA model, frozen reference copy)."""
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM
    from trl import AutoModelForSeq2SeqLMWithValueHead, create_reference_model

    base = AutoModelForSeq2SeqLM.from_pretrained(str(base_dir), use_safetensors=True)
    peft = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=True)
    policy = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(peft, is_trainable=True).to(device)
    return policy, create_reference_model(policy)


def _finite(x) -> float:
    value = float(np.mean(x))
    return value if math.isfinite(value) else float("nan")


def run_ppo(policy, ref_model, tokenizer, prompts: Sequence[str], reward_fn: Callable[[list[str]], Sequence[float]],
            cfg: PpoConfig, *, max_source_tokens: int, seed: int, live=None, progress: bool = True) -> list[dict]:
    """``cfg.steps`` PPO steps of ``cfg.batch_size`` prompts (cycling through ``prompts``); per-step statistics."""
    import torch
    from trl import PPOConfig, PPOTrainer

    if len(prompts) < cfg.batch_size:
        raise ValueError(f"PPO needs at least ppo.batch_size={cfg.batch_size} prompts, got {len(prompts)}")
    trainer = PPOTrainer(
        config=PPOConfig(learning_rate=cfg.lr, batch_size=cfg.batch_size, mini_batch_size=cfg.mini_batch_size,
                         ppo_epochs=cfg.ppo_epochs, init_kl_coef=cfg.init_kl_coef, adap_kl_ctrl=cfg.adaptive_kl,
                         target=cfg.target_kl, seed=seed, log_with=None),
        model=policy, ref_model=ref_model, tokenizer=tokenizer)
    rng = random.Random(seed)  # response lengths, drawn per prompt as the course's LengthSampler did
    start_id = policy.pretrained_model.config.decoder_start_token_id
    history = []
    for step in tqdm(range(cfg.steps), desc="PPO", unit="step", disable=not progress):
        batch = [prompts[(step * cfg.batch_size + i) % len(prompts)] for i in range(cfg.batch_size)]
        queries = [tokenizer(p, truncation=True, max_length=max_source_tokens, return_tensors="pt").input_ids[0]
                   for p in batch]
        responses = []
        for query in queries:
            generated = trainer.generate(query, max_new_tokens=rng.randint(cfg.min_new_tokens, cfg.max_new_tokens),
                                         do_sample=True, top_k=cfg.top_k, top_p=cfg.top_p,
                                         pad_token_id=tokenizer.pad_token_id).squeeze(0)
            # An encoder-decoder returns the decoder start token first; the response is what follows it. (The
            # course kept the last max_new_tokens ids instead, which breaks when generation stops early.)
            responses.append(generated[1:] if generated[0] == start_id else generated)
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
            "response_tokens_mean": float(np.mean([len(r) for r in responses])),
        }
        history.append(row)
        if live is not None:
            live.step = step + 1
            for key, value in row.items():
                if key != "step":
                    live.log_metric(f"ppo/{key}", value)
            live.next_step()
        log.info("PPO step %d: reward %.4f, KL %.4f", step + 1, row["reward_mean"], row["kl"])
    return history


def save_adapter(policy, out_dir: str | Path) -> None:
    """The detoxified LoRA adapter alone (safetensors), loadable over the base model like any other variant."""
    policy.pretrained_model.save_pretrained(str(out_dir), safe_serialization=True)
