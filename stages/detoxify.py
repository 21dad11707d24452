"""Stage detoxify: PPO on the LoRA model with the toxicity classifier's non-toxic logit as reward (trl 0.11.4).

The KL reference is the LoRA summarizer itself (merged into the base; PPO trains a fresh adapter on top), and the
output is a whole model: see src/summarizer/ppo.py.
"""

from __future__ import annotations

import logging
import time

from summarizer.config import load_config
from summarizer.device import select_pinned_runtime, set_determinism
from summarizer.io import read_jsonl, write_json
from summarizer.modeling import count_parameters, load_classifier, load_tokenizer
from summarizer.ppo import load_policy, make_trainer, run_ppo, save_policy, select_prompts
from summarizer.stage import parser, run_stage
from summarizer.toxicity import ToxicityScorer

log = logging.getLogger("summarizer.detoxify")


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--base-model", default="models/base")
    p.add_argument("--adapter", default="models/lora", help="the LoRA adapter PPO starts from")
    p.add_argument("--classifier", default="models/classifier")
    p.add_argument("--train", default="data/prepared/train.jsonl", help="dialogues for the PPO prompts")
    p.add_argument("--out", required=True, help="the detoxified model (LoRA and PPO adapters merged)")
    p.add_argument("--live", required=True, help="dvclive folder: per-step curves")
    p.add_argument("--metrics", required=True)
    args = p.parse_args(argv)
    # The device is checked after pinning (accelerate, like the Trainer, would otherwise use cuda:0).
    cfg = load_config(args.params, check_device=False)
    from dvclive import Live
    import torch

    runtime = select_pinned_runtime(cfg.device, cfg.precision)
    set_determinism(cfg.deterministic)
    torch.manual_seed(cfg.seed)
    pc, c = cfg.ppo, cfg.classifier
    prompts = select_prompts(read_jsonl(args.train), cfg.prompt.template, pc.prompt_min_chars, pc.prompt_max_chars,
                             cfg.seed)
    log.info("%d PPO prompts (train dialogues of %d-%d characters)", len(prompts), pc.prompt_min_chars + 1,
             pc.prompt_max_chars)
    tokenizer = load_tokenizer(args.base_model)
    policy = load_policy(args.base_model, args.adapter)
    trainer = make_trainer(policy, tokenizer, pc, runtime, cfg.seed)
    classifier, cls_tokenizer = load_classifier(args.classifier, device=runtime.device)
    scorer = ToxicityScorer(classifier, cls_tokenizer, toxic_label=c.toxic_label, nontoxic_label=c.nontoxic_label,
                            max_tokens=c.max_tokens, batch_size=c.batch_size)
    live = Live(dir=args.live, dvcyaml=False, save_dvc_exp=False, report=None)
    start = time.perf_counter()
    history = run_ppo(trainer, prompts, scorer.reward, pc, max_source_tokens=cfg.prompt.max_source_tokens,
                      seed=cfg.seed, device=runtime.device, live=live)
    runtime_s = time.perf_counter() - start
    live.end()
    params = count_parameters(policy.pretrained_model)
    weights_dtype = str(next(policy.parameters()).dtype).replace("torch.", "")
    save_policy(policy, tokenizer, args.out)
    write_json(args.metrics, {
        "method": "ppo", "steps": len(history), "prompts_available": len(prompts),
        "trainable_parameters": params["trainable"], "total_parameters": params["total"],
        "reward_first": round(history[0]["reward_mean"], 4), "reward_last": round(history[-1]["reward_mean"], 4),
        "kl_first": round(history[0]["kl"], 4), "kl_last": round(history[-1]["kl"], 4),
        "train_runtime_s": round(runtime_s, 2), "device": runtime.device,
        # fp32 weights; bf16/fp16 means autocast of the forward passes (accelerate's mixed_precision)
        "precision": runtime.precision, "weights_dtype": weights_dtype,
    })


if __name__ == "__main__":
    run_stage(main)
