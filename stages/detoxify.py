"""Stage detoxify: PPO on the LoRA model with the toxicity classifier's non-toxic logit as reward (trl 0.11.4)."""

from __future__ import annotations

import logging
import time

from summarizer.config import load_config
from summarizer.device import select_runtime
from summarizer.io import read_jsonl, write_json
from summarizer.modeling import count_parameters, load_classifier, load_tokenizer
from summarizer.ppo import load_policy, run_ppo, save_adapter, select_prompts
from summarizer.stage import parser, run_stage
from summarizer.toxicity import ToxicityScorer

log = logging.getLogger("summarizer.detoxify")


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--base-model", default="models/base")
    p.add_argument("--adapter", default="models/lora", help="the LoRA adapter PPO starts from")
    p.add_argument("--classifier", default="models/classifier")
    p.add_argument("--train", default="data/prepared/train.jsonl", help="dialogues for the PPO prompts")
    p.add_argument("--out", required=True, help="the detoxified adapter")
    p.add_argument("--live", required=True, help="dvclive folder: per-step curves")
    p.add_argument("--metrics", required=True)
    args = p.parse_args(argv)
    cfg = load_config(args.params)
    from dvclive import Live
    import torch

    runtime = select_runtime(cfg.device, cfg.precision)
    torch.manual_seed(cfg.seed)
    pc, c = cfg.ppo, cfg.classifier
    prompts = select_prompts(read_jsonl(args.train), cfg.prompt.template, pc.prompt_min_chars, pc.prompt_max_chars,
                             cfg.seed)
    log.info("%d PPO prompts (train dialogues of %d-%d characters)", len(prompts), pc.prompt_min_chars + 1,
             pc.prompt_max_chars)
    tokenizer = load_tokenizer(args.base_model)
    policy, reference = load_policy(args.base_model, args.adapter, runtime.device)
    classifier, cls_tokenizer = load_classifier(args.classifier, device=runtime.device)
    scorer = ToxicityScorer(classifier, cls_tokenizer, toxic_label=c.toxic_label, nontoxic_label=c.nontoxic_label,
                            max_tokens=c.max_tokens, batch_size=c.batch_size)
    live = Live(dir=args.live, dvcyaml=False, save_dvc_exp=False, report=None)
    start = time.perf_counter()
    history = run_ppo(policy, reference, tokenizer, prompts, scorer.reward, pc,
                      max_source_tokens=cfg.prompt.max_source_tokens, seed=cfg.seed, live=live)
    runtime_s = time.perf_counter() - start
    live.end()
    save_adapter(policy, args.out)
    params = count_parameters(policy.pretrained_model)
    write_json(args.metrics, {
        "method": "ppo", "steps": len(history), "prompts_available": len(prompts),
        "trainable_parameters": params["trainable"], "total_parameters": params["total"],
        "reward_first": round(history[0]["reward_mean"], 4), "reward_last": round(history[-1]["reward_mean"], 4),
        "kl_last": round(history[-1]["kl"], 4), "train_runtime_s": round(runtime_s, 2), "device": runtime.device, "precision": runtime.precision,
    })


if __name__ == "__main__":
    run_stage(main)
