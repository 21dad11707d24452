"""Stage detoxify: PPO (trl 0.11.4) on the LoRA summarizer trained on the toxic references (lora_toxic), rewarded
by the classifier (and, with ppo.quality_weight, ROUGE-L against the dialogue's clean reference).

The KL reference is the starting summarizer itself (merged into the base; PPO trains a fresh adapter on top), and
the output is a whole model: see src/summarizer/ppo.py.
"""

from __future__ import annotations

import logging
import time

from summarizer.config import load_params
from summarizer.device import guard_large_model_on_cpu, select_pinned_runtime
from summarizer.flops import saved_model_split, train_flops_per_example
from summarizer.io import read_jsonl, write_json
from summarizer.modeling import load_tokenizer, resolve_attention
from summarizer.ppo import (PpoReward, heldout_reward, load_policy, make_trainer, run_ppo, run_summary, save_policy,
                            select_prompts, split_heldout)
from summarizer.stage import parser, run_stage
from summarizer.toxicity import load_toxicity_scorer

log = logging.getLogger("summarizer.detoxify")


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--base-model", required=True, help="the base model")
    p.add_argument("--adapter", required=True,
                   help="the LoRA adapter PPO starts from (trained on the toxic references)")
    p.add_argument("--classifier", required=True, help="the toxicity classifier (the reward)")
    p.add_argument("--train", required=True, help="dialogues for the PPO prompts")
    p.add_argument("--out", required=True, help="the detoxified model (LoRA and PPO adapters merged)")
    p.add_argument("--start-out", required=True,
                   help="the policy PPO starts from (LoRA merged), saved like --out: toxicity's 'before'")
    p.add_argument("--live", required=True, help="dvclive folder: per-step curves")
    p.add_argument("--metrics", required=True)
    args = p.parse_args(argv)
    # The device is checked after pinning (accelerate, like the Trainer, would otherwise use cuda:0).
    cfg = load_params(args.params)
    from dvclive import Live
    import torch

    runtime = select_pinned_runtime(cfg.device, cfg.precision, deterministic=cfg.deterministic)
    torch.manual_seed(cfg.seed)
    pc = cfg.ppo
    prompts = select_prompts(read_jsonl(args.train), cfg.prompt.template, pc.prompt_min_chars, pc.prompt_max_chars,
                             cfg.seed)
    prompts, heldout = split_heldout(prompts, pc.heldout_prompts, pc.batch_size)
    log.info("%d PPO prompts (train dialogues of %d-%d characters), %d more held out", len(prompts),
             pc.prompt_min_chars + 1, pc.prompt_max_chars, len(heldout))
    split = saved_model_split(args.base_model)
    # a PPO step: sampling and two forward passes (policy, reference) ≈ one training pass, then ppo_epochs of them
    guard_large_model_on_cpu(runtime, split.total, what="detoxify (PPO)",
                             flops=train_flops_per_example(split, cfg.prompt.max_source_tokens, pc.max_new_tokens)
                             * pc.steps * pc.batch_size * (1 + pc.ppo_epochs))
    tokenizer = load_tokenizer(args.base_model)
    policy = load_policy(args.base_model, args.adapter, resolve_attention(cfg.model.attention, runtime.device),
                         tokenizer=tokenizer, start_dir=args.start_out)
    trainer = make_trainer(policy, tokenizer, pc, runtime, cfg.seed)
    scorer = load_toxicity_scorer(args.classifier, cfg.classifier, device=runtime.device)
    reward = PpoReward.from_params(scorer.reward, pc)
    sampling = (f"fixed length: {pc.max_new_tokens} tokens, EOS not suppressed, cut at the first EOS to score"
                if pc.fixed_length else f"the course's: length limit drawn in [{pc.min_new_tokens}, "
                f"{pc.max_new_tokens}] per step, a response ends at EOS")
    log.info("reward: %s; sampling: %s", reward.describe(), sampling)
    live = Live(dir=args.live, dvcyaml=False, save_dvc_exp=False, report=None)
    start = time.perf_counter()
    history = run_ppo(trainer, prompts, reward, pc, max_source_tokens=cfg.prompt.max_source_tokens,
                      seed=cfg.seed, device=runtime.device, live=live)
    runtime_s = time.perf_counter() - start
    live.end()
    measured = None if not heldout else heldout_reward(
        trainer, heldout, reward, pc, max_source_tokens=cfg.prompt.max_source_tokens, device=runtime.device,
        **cfg.bootstrap)
    summary = run_summary(policy, history, prompts_available=len(prompts), runtime_s=runtime_s, runtime=runtime,
                          seed=cfg.seed, heldout=measured, reward=reward.describe(), sampling=sampling)
    save_policy(policy, tokenizer, args.out)
    write_json(args.metrics, summary)


if __name__ == "__main__":
    run_stage(main)
