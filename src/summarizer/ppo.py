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
began from; the log-probs trl computes then equal the sampler's (tested). trl 0.11.4 masks position 0 for
encoder-decoders (``start = 1`` in ``batched_forward_pass``, ~1038): the log-prob of the *first generated* token,
not of the start token (that one is never scored: ``logits[:, :-1]`` against ``input_ids[:, 1:]``, ~1032). Left
so, the first token of every summary gets no policy gradient and no KL: on seed 7 of the learning profile every
summary opened with an insult before PPO and still did after it (issue 34). :class:`Seq2SeqPPOTrainer` unmasks it.

Queries go through ``PPOTrainer.generate``'s list path, which pads, moves them to the model's device and batches.
The reward of a sampled summary (:class:`PpoReward`) is a toxicity term from the classifier (its logit margin, the
course's, or log P(non-toxic)) plus ``quality_weight`` × ROUGE-L F1 against the dialogue's reference, less a penalty
under a length floor; with ``fixed_length`` every response is sampled to the same length and cut at its first EOS
to be scored. What is saved is the LoRA summarizer with the PPO adapter merged in: a whole model, loaded like
``full`` (the value head exists for training alone).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

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
from summarizer.scoring import bootstrap_ci, bootstrap_difference, rouge_f1

log = logging.getLogger(__name__)


class PpoPrompt(NamedTuple):
    """A PPO training prompt (the dialogue in the instruction template) and the dialogue's reference summary (what
    the quality term scores the sampled summary against)."""

    prompt: str
    reference: str


def select_prompts(rows: Sequence[dict], template: str, min_chars: int, max_chars: int, seed: int) -> list[PpoPrompt]:
    """Train dialogues with ``min_chars < len <= max_chars``, wrapped in the instruction template, with their clean
    references, shuffled by seed."""
    prompts = [PpoPrompt(build_prompt(r["dialogue"], template), r["summary"]) for r in rows
               if min_chars < len(r["dialogue"]) <= max_chars]
    random.Random(seed).shuffle(prompts)
    return prompts


def split_heldout(prompts: Sequence, heldout: int, batch_size: int) -> tuple[list, list]:
    """(training prompts, held-out prompts): the last ``heldout`` prompts are never trained on."""
    if len(prompts) - heldout < batch_size:
        raise ValueError(f"{len(prompts)} PPO prompts leave fewer than ppo.batch_size={batch_size} for training "
                         f"after ppo.heldout_prompts={heldout}: lower ppo.heldout_prompts or widen "
                         f"ppo.prompt_min_chars/prompt_max_chars")
    return list(prompts[:len(prompts) - heldout]), list(prompts[len(prompts) - heldout:])


# --------------------------------------------------------------------------------------------------------------------
# The reward


class PpoReward:
    """reward = toxicity term + ``quality_weight`` × ROUGE-L F1(cut summary, reference) − ``short_penalty`` when the
    cut summary has fewer than ``min_tokens`` tokens.

    The toxicity term is the classifier's logit margin (non-toxic − toxic: the course's reward, unbounded) or
    ``log_probability`` = log P(non-toxic) = −softplus(−margin). Why: the margin alone is won by gaming the
    classifier — the empty text scores 3.28, stock stubs up to 5.86, a normal summary 1.24 (alt-profanity-check) —
    and PPO finds such a stub and repeats it for every dialogue (issue 34). log P(non-toxic) equals the margin where
    a text is offensive (margin ≪ 0: each insult removed counts, as the classifier's log-odds add up) and saturates
    at 0 where it is not (a stub gains 0.05 over a summary of margin 3). P(non-toxic) itself would saturate on the
    offensive side too: a summary with three insults stays at P ≈ 0.9997 offensive until the last one goes, so
    removing one earns nothing (measured: PPO moved 3% of the summaries in 80 steps). ROUGE-L F1 against the
    reference (RL4LMs' summarization reward) costs a stub its recall and padding its precision.
    """

    def __init__(self, margin: Callable[[list[str]], Sequence[float]], *, toxicity: str = "margin",
                 quality_weight: float = 0.0, min_tokens: int = 0, short_penalty: float = 0.0):
        if toxicity not in ("margin", "log_probability"):
            raise ValueError(f"toxicity must be margin or log_probability, got {toxicity!r}")
        self.margin, self.toxicity, self.quality_weight = margin, toxicity, quality_weight
        self.min_tokens, self.short_penalty = min_tokens, short_penalty

    @classmethod
    def from_params(cls, margin: Callable[[list[str]], Sequence[float]], cfg: PpoParams) -> PpoReward:
        return cls(margin, toxicity=cfg.toxicity_reward, quality_weight=cfg.quality_weight,
                   min_tokens=cfg.min_summary_tokens, short_penalty=cfg.short_penalty)

    def describe(self) -> str:
        term = {"margin": "logit margin (non-toxic - toxic logit)",
                "log_probability": "log P(non-toxic) = -softplus(-logit margin)"}[self.toxicity]
        out = term
        if self.quality_weight:
            out += f" + {self.quality_weight:g} x ROUGE-L F1 against the reference"
        if self.short_penalty:
            out += f" - {self.short_penalty:g} if under {self.min_tokens} tokens"
        return out

    def parts(self, texts: Sequence[str], references: Sequence[str] | None, lengths: Sequence[int]
              ) -> dict[str, np.ndarray]:
        """Per text: ``toxicity`` (the term), ``quality`` (ROUGE-L F1, 0 when the weight is 0), ``short`` (1 when
        under the floor) and ``total``, the reward."""
        margin = np.asarray(self.margin(list(texts)), dtype=float)
        toxicity = margin if self.toxicity == "margin" else -np.logaddexp(0.0, -margin)  # −softplus(−margin)
        quality = np.zeros(len(texts))
        if self.quality_weight:
            if references is None:
                raise ValueError("the quality term needs each prompt's reference")
            quality = np.array([rouge_f1(t, r)["rougeL"] for t, r in zip(texts, references, strict=True)])
        short = (np.asarray(lengths) < self.min_tokens).astype(float)
        total = toxicity + self.quality_weight * quality - self.short_penalty * short
        return {"toxicity": toxicity, "quality": quality, "short": short, "total": total}


def as_reward(reward: PpoReward | Callable[[list[str]], Sequence[float]]) -> PpoReward:
    """A plain function of the texts is the course's kind of reward: that function alone."""
    return reward if isinstance(reward, PpoReward) else PpoReward(reward)


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


class Seq2SeqPPOTrainer(PPOTrainer):
    """trl's PPOTrainer with the first generated token of an encoder-decoder response in the loss and the KL.

    trl's mask for an encoder-decoder is the decoder attention mask shifted by one, then ``masks[j, :1] = 0``
    (``ppo_trainer.py`` ~1034-1046). Position ``t`` of the log-probs scores token ``t + 1`` of the response, and
    token 0 is the decoder start token, so position 0 is the first sampled token: this restores it from the same
    shifted attention mask (1 wherever the response has a token there)."""

    def batched_forward_pass(self, model, queries, responses, model_inputs, return_logits=False,
                             response_masks=None):
        if response_masks is not None:  # trl's per-token response masks are not used here; keep trl's rule whole
            raise NotImplementedError("response_masks are not supported by Seq2SeqPPOTrainer")
        logprobs, logits, values, masks = super().batched_forward_pass(model, queries, responses, model_inputs,
                                                                       return_logits=return_logits)
        if self.is_encoder_decoder:
            masks[:, 0] = model_inputs["decoder_attention_mask"][:, 1].to(masks.dtype)
        return logprobs, logits, values, masks


def make_trainer(policy: AutoModelForSeq2SeqLMWithValueHead, tokenizer: PreTrainedTokenizerBase, cfg: PpoParams,
                 runtime: Runtime, seed: int) -> Seq2SeqPPOTrainer:
    """A :class:`Seq2SeqPPOTrainer` on ``runtime``: fp32 weights, bf16/fp16 autocast through accelerate when asked."""
    mixed = {"bf16": "bf16", "fp16": "fp16"}.get(runtime.precision, "no")
    config = PPOConfig(learning_rate=cfg.lr, batch_size=cfg.batch_size, mini_batch_size=cfg.mini_batch_size,
                       ppo_epochs=cfg.ppo_epochs, init_kl_coef=cfg.init_kl_coef, adap_kl_ctrl=cfg.adaptive_kl,
                       target=cfg.target_kl, horizon=cfg.kl_horizon, seed=seed, log_with=None,
                       accelerator_kwargs={"mixed_precision": mixed, "cpu": runtime.device == "cpu"})
    # ref_model=None: the reference is the policy with its adapter disabled (see the module docstring).
    return Seq2SeqPPOTrainer(config=config, model=policy, ref_model=None, tokenizer=tokenizer)


def encode_queries(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str | PpoPrompt], max_source_tokens: int
                   ) -> list[torch.Tensor]:
    texts = [p.prompt if isinstance(p, PpoPrompt) else p for p in prompts]
    return [torch.tensor(ids) for ids in tokenizer(texts, truncation=True, max_length=max_source_tokens)["input_ids"]]


def generate_responses(trainer: PPOTrainer, queries: Sequence[torch.Tensor], *, max_new_tokens: int,
                       batch_size: int, top_k: int, top_p: float, min_new_tokens: int = 2,
                       fixed_length: bool = False) -> list[torch.Tensor]:
    """Sampled responses for ``trainer.step``, each starting with the decoder start token.

    The list path of ``PPOTrainer.generate`` pads the queries, moves them to ``trainer.current_device`` and
    generates ``batch_size`` at a time (``ppo_trainer.py`` ~555-600); for an encoder-decoder it returns the whole
    decoder sequence, start token first, cut after the first EOS.

    ``fixed_length`` (Ziegler et al. 2019): every response is exactly ``max_new_tokens`` sampled tokens. EOS is not
    suppressed — it is sampled like any token, and :func:`cut_at_eos` cuts the text there to score it — but it does
    not stop the sampler (``eos_token_id=None``: transformers applies the kwargs after the model's generation config,
    ``generation/utils.py`` ~2108-2112, so no EOS stopping criterion is built, ~1685) and trl does not cut after it
    (``remove_padding=False``, ``ppo_trainer.py`` ~593). Every response then has the same number of tokens in trl's
    KL sum and loss: a shorter summary pays no less KL. ``min_new_tokens`` (EOS suppressed) is never used so: trl's
    docs warn it lets the KL go negative (``how_to_train.md``).
    """
    tokenizer = trainer.tokenizer
    # At least 2 new tokens: a summary of one token is the EOS alone (empty), the stub the course's reward favours.
    length = dict(min_new_tokens=max(min_new_tokens, 2), eos_token_id=tokenizer.eos_token_id)
    if fixed_length:
        length = dict(eos_token_id=None, remove_padding=False)
    responses = trainer.generate(list(queries), batch_size=batch_size, return_prompt=False, do_sample=True,
                                 top_k=top_k, top_p=top_p, max_new_tokens=max(max_new_tokens, 2),
                                 pad_token_id=tokenizer.pad_token_id, **length)
    start_id = trainer.model.pretrained_model.config.decoder_start_token_id
    for response in responses:
        if int(response[0]) != start_id:  # trl's contract for encoder-decoders; fail loudly if it ever changes
            raise RuntimeError(f"a PPO response must start with the decoder start token {start_id}")
        if fixed_length and len(response) != max(max_new_tokens, 2) + 1:
            raise RuntimeError(f"a fixed-length response has {len(response) - 1} tokens, not {max_new_tokens}")
    return responses


def cut_at_eos(response: torch.Tensor, eos_id: int) -> list[int]:
    """The summary a response stands for: its tokens after the start token, up to (not including) the first EOS."""
    tokens = response[1:].tolist()
    return tokens[:tokens.index(eos_id)] if eos_id in tokens else tokens


def sample(trainer: PPOTrainer, queries: Sequence[torch.Tensor], cfg: PpoParams, *, max_new_tokens: int,
           batch_size: int) -> tuple[list[torch.Tensor], list[str], list[int]]:
    """(responses for trl, the texts they stand for — cut at the first EOS — and those texts' token counts)."""
    responses = generate_responses(trainer, queries, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                   top_k=cfg.top_k, top_p=cfg.top_p, fixed_length=cfg.fixed_length)
    cut = [cut_at_eos(r, trainer.tokenizer.eos_token_id) for r in responses]
    return responses, trainer.tokenizer.batch_decode(cut, skip_special_tokens=True), [len(c) for c in cut]


def _finite(x) -> float:
    value = float(np.mean(x))
    return value if math.isfinite(value) else float("nan")


def _references(prompts: Sequence) -> list[str] | None:
    return [p.reference for p in prompts] if all(isinstance(p, PpoPrompt) for p in prompts) else None


def run_ppo(trainer: PPOTrainer, prompts: Sequence[PpoPrompt | str],
            reward: PpoReward | Callable[[list[str]], Sequence[float]], cfg: PpoParams, *, max_source_tokens: int,
            seed: int, device: str, live=None, progress: bool = True) -> list[dict]:
    """``cfg.steps`` PPO steps of ``cfg.batch_size`` prompts (cycling through ``prompts``); per-step statistics.

    With ``cfg.fixed_length`` every response is ``max_new_tokens`` long (:func:`generate_responses`); otherwise the
    response length limit is drawn uniformly from ``[min_new_tokens, max_new_tokens]`` once per step (one generate
    call serves a whole generation batch) and EOS may end a response earlier. Either way the reward scores the text
    cut at the first EOS, and trl adds it at the response's last token (``compute_rewards``, ~1138-1146).
    """
    if len(prompts) < cfg.batch_size:
        raise ValueError(f"PPO needs at least ppo.batch_size={cfg.batch_size} prompts, got {len(prompts)}")
    reward = as_reward(reward)
    tokenizer = trainer.tokenizer
    gen_batch = min(cfg.batch_size, resolve_batch_size(cfg.generation_batch_size, device))
    rng = random.Random(seed)
    history = []
    for step in tqdm(range(cfg.steps), desc="PPO", unit="step", disable=not progress):
        batch = [prompts[(step * cfg.batch_size + i) % len(prompts)] for i in range(cfg.batch_size)]
        queries = encode_queries(tokenizer, batch, max_source_tokens)
        drawn = rng.randint(cfg.min_new_tokens, cfg.max_new_tokens)  # drawn either way: one seed, one sequence
        responses, texts, lengths = sample(trainer, queries, cfg, batch_size=gen_batch,
                                           max_new_tokens=cfg.max_new_tokens if cfg.fixed_length else drawn)
        parts = reward.parts(texts, _references(batch), lengths)
        rewards = [torch.tensor(float(r)) for r in parts["total"]]
        stats = trainer.step(queries, responses, rewards)
        row = {
            "step": step + 1,
            "reward_mean": _finite(parts["total"]),
            "toxicity_term": _finite(parts["toxicity"]),   # the classifier's term, as the reward has it
            "quality_term": _finite(parts["quality"]),     # ROUGE-L F1 before its weight
            "short_share": _finite(parts["short"]),        # responses cut below the floor
            "kl": _finite(stats["objective/kl"]),
            "kl_coef": _finite(stats["objective/kl_coef"]),
            "policy_loss": _finite(stats["ppo/loss/policy"]),
            "value_loss": _finite(stats["ppo/loss/value"]),
            "response_tokens_mean": float(np.mean([len(r) - 1 for r in responses])),  # without the start token
            "summary_tokens_mean": float(np.mean(lengths)),  # what the reward scored: cut at the first EOS
        }
        if live is not None:
            live.step = step + 1
            for key, value in row.items():
                if key != "step":
                    live.log_metric(f"ppo/{key}", value)
            live.next_step()
        row["rewards"] = [float(r) for r in parts["total"]]  # per response, for the first- vs last-quarter comparison
        history.append(row)
        log.info("PPO step %d: reward %.4f (toxicity %.4f, quality %.4f), KL %.4f, summaries of %.1f tokens",
                 step + 1, row["reward_mean"], row["toxicity_term"], row["quality_term"], row["kl"],
                 row["summary_tokens_mean"])
    return history


def heldout_reward(trainer: PPOTrainer, prompts: Sequence[PpoPrompt | str],
                   reward: PpoReward | Callable[[list[str]], Sequence[float]], cfg: PpoParams, *,
                   max_source_tokens: int, seed: int, device: str, resamples: int = 1000,
                   confidence: float = 0.95) -> dict:
    """The policy's reward on ``prompts`` (never trained on) before PPO and after: did PPO raise its own reward?

    ``heldout_samples`` summaries per prompt, sampled as in training but with one length limit
    (``max_new_tokens``), from the same seed. "Before" is the policy with its PPO adapter disabled, which is the
    LoRA summarizer PPO started from (and its KL reference): the same model before any update, so the difference is
    exactly 0 then (tested). The difference is paired over prompts: the prompts' own rewards, which vary more than
    PPO moves them, cancel. The reward's terms are reported too (before and after means).
    """
    reward = as_reward(reward)
    k = cfg.heldout_samples
    queries = [q for q in encode_queries(trainer.tokenizer, prompts, max_source_tokens) for _ in range(k)]
    references = _references(prompts)
    references = None if references is None else [r for r in references for _ in range(k)]
    gen_batch = min(len(queries), resolve_batch_size(cfg.generation_batch_size, device))

    def per_prompt() -> tuple[np.ndarray, dict]:
        torch.manual_seed(seed)  # the same draws for both models: equal models give equal samples
        _, texts, lengths = sample(trainer, queries, cfg, max_new_tokens=cfg.max_new_tokens, batch_size=gen_batch)
        parts = reward.parts(texts, references, lengths)
        terms = {"toxicity_term": float(parts["toxicity"].mean()), "quality_term": float(parts["quality"].mean()),
                 "short_share": float(parts["short"].mean()), "summary_tokens": float(np.mean(lengths))}
        return parts["total"].reshape(len(prompts), k).mean(axis=1), terms

    # the adapter disabled, as trl does for the KL reference (trl/trainer/ppo_trainer.py ~258, ~756)
    with trainer.optional_peft_ctx():
        before, terms_before = per_prompt()
    after, terms_after = per_prompt()
    ci = dict(resamples=resamples, confidence=confidence, seed=seed)
    paired = bootstrap_ci(after - before, **ci)
    return rounded({"prompts": len(prompts), "samples_per_prompt": k,
                    "before": bootstrap_ci(before, **ci), "after": bootstrap_ci(after, **ci),
                    "difference": {"difference": paired["mean"], "ci_low": paired["ci_low"],
                                   "ci_high": paired["ci_high"]},
                    "terms_before": terms_before, "terms_after": terms_after,
                    "response_tokens_before": terms_before["summary_tokens"],
                    "response_tokens_after": terms_after["summary_tokens"]}, LOSS_DIGITS)


def run_summary(policy: AutoModelForSeq2SeqLMWithValueHead, history: Sequence[dict], *, prompts_available: int,
                runtime_s: float, runtime: Runtime, seed: int = 0, heldout: dict | None = None,
                reward: str = "logit margin (non-toxic - toxic logit)", sampling: str = "") -> dict:
    """metrics/train/ppo.json: what was trained, the first and last step's reward and KL, the reward of the first
    against the last quarter of the steps (did PPO raise its own reward?), and how long it took."""
    params = count_parameters(policy.pretrained_model)
    return {
        "method": "ppo", "steps": len(history), "prompts_available": prompts_available,
        "trainable_parameters": params["trainable"], "total_parameters": params["total"],
        "reward": reward, "sampling": sampling,
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
