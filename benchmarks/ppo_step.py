"""PPO: one step with the project's batched generation against the course's one-prompt-at-a-time loop.

Both build the same policy (flan-t5-small's architecture with random weights, a LoRA adapter merged in and a fresh
one on top, a value head: `summarizer.ppo.load_policy`) and the same `PPOTrainer` from params (`ppo.*`: 16 prompts,
mini-batches of 4), on the same 16 DialogSum train prompts, and sample exactly `--new-tokens` tokens per response
(min = max, so both do the same decoding work). The course's lab calls `ppo_trainer.generate(prompt_tensor, ...)`
once per prompt; the project calls the list path of `PPOTrainer.generate` with `ppo.generation_batch_size`
(`summarizer.ppo.generate_responses`). The reward is the same cheap function for both (no classifier), so the
difference is generation; `trainer.step` is timed too and is the same work.

    python benchmarks/ppo_step.py [--data ../shared/data/dialogsum] [--new-tokens 48] [--threads 2]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from benchmarks_common import ROOT, dialogsum_text, flan_t5_small_random, parser, report
from summarizer.config import load_params
from summarizer.device import Runtime
from summarizer.ppo import encode_queries, generate_responses, load_policy, make_trainer, select_prompts
from summarizer.training import wrap_model


def course_responses(trainer, queries, new_tokens):
    """The course lab's loop: one generate call per prompt, the response cut to the last new tokens."""
    out = []
    for query in queries:
        summary = trainer.generate(query, do_sample=True, top_k=0, top_p=1.0, min_new_tokens=new_tokens,
                                   max_new_tokens=new_tokens, pad_token_id=trainer.tokenizer.pad_token_id)
        out.append(summary.squeeze()[-new_tokens:])
    return out


def one_step(name, trainer, queries, new_tokens, pc):
    start = time.perf_counter()
    if name == "course":
        responses = course_responses(trainer, queries, new_tokens)
    else:
        responses = generate_responses(trainer, queries, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                       batch_size=pc.batch_size, top_k=pc.top_k, top_p=pc.top_p)
    generated = time.perf_counter()
    rewards = [torch.tensor(len(r) / 10.0) for r in responses]  # the same cheap reward for both
    trainer.step(list(queries), list(responses), rewards)
    return generated - start, time.perf_counter() - generated


def main(argv=None) -> dict:
    p = parser(__doc__)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_params(ROOT / "params.yaml")
    pc = cfg.ppo
    train, _, tokenizer = dialogsum_text(args.data, 0)
    prompts = select_prompts(train, cfg.prompt.template, pc.prompt_min_chars, pc.prompt_max_chars, cfg.seed)
    queries = encode_queries(tokenizer, prompts[:pc.batch_size], cfg.prompt.max_source_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        base, adapter = Path(tmp) / "base", Path(tmp) / "lora"
        model = flan_t5_small_random(tokenizer)
        model.save_pretrained(base)
        tokenizer.save_pretrained(base)
        wrap_model(model, "lora", cfg.lora, base).save_pretrained(adapter)
        cpu = Runtime("cpu", "fp32")
        times = {}
        for name in ("course", "batched"):
            torch.manual_seed(cfg.seed)
            trainer = make_trainer(load_policy(base, adapter), tokenizer, pc, cpu, cfg.seed)
            trainer.generate(queries[0], max_new_tokens=2, pad_token_id=tokenizer.pad_token_id)  # warm-up, untimed
            times[name] = one_step(name, trainer, queries, args.new_tokens, pc)
    (g_course, s_course), (g_ours, s_ours) = times["course"], times["batched"]
    step_ratio = (g_course + s_course) / (g_ours + s_ours)
    figures = {"prompts": len(queries), "new_tokens": args.new_tokens, "threads": args.threads,
               "course": {"generate_s": round(g_course, 2), "step_s": round(s_course, 2)},
               "batched": {"generate_s": round(g_ours, 2), "step_s": round(s_ours, 2)},
               "generation_speedup": round(g_course / g_ours, 2), "whole_step_speedup": round(step_ratio, 2)}
    line = (f"PPO step ({len(queries)} prompts, {args.new_tokens} new tokens, {args.threads} thread(s)): batched "
            f"{g_ours + s_ours:.1f} s vs the course's one-at-a-time {g_course + s_course:.1f} s: {step_ratio:.2f}x "
            f"faster (generation alone {g_course / g_ours:.2f}x; trainer.step {s_ours:.1f} s vs {s_course:.1f} s)")
    return report(line, figures, args.json)


if __name__ == "__main__":
    main()
