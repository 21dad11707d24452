"""Generation throughput: the course notebooks' one-at-a-time loop against the shared batched function.

Same model (flan-t5-small's architecture with random weights: no Hub here), same 64 DialogSum test dialogues in the
instruction prompt, same number of new tokens for every output (min_new_tokens = max_new_tokens), so the two loops
do identical decoding work and only the batching differs.

    python benchmarks/generation.py [--data ../shared/data/dialogsum] [--n 64] [--batch-size 16] [--new-tokens 64]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from summarizer.config import load_params
from summarizer.evaluation import to_dialogues
from summarizer.generation import build_generation_config, generate_batched
from summarizer.data import load_local_splits
from summarizer.modeling import train_t5_tokenizer
from summarizer.prompts import build_prompt

from benchmarks_common import DATA, ROOT, flan_t5_small_random


def one_at_a_time(model, tokenizer, prompts, generation_config, max_source_tokens):
    """The course labs' loop: tokenize, generate and decode each dialogue on its own."""
    out = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt", truncation=True, max_length=max_source_tokens).input_ids
            generated = model.generate(input_ids=ids, generation_config=generation_config)
            out.append(tokenizer.decode(generated[0], skip_special_tokens=True))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DATA), help="a DialogSum-layout folder")
    p.add_argument("--n", type=int, default=64, help="test dialogues")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_params(ROOT / "params.yaml")
    splits = load_local_splits(args.data)
    train = splits["train"][:2000]
    tokenizer = train_t5_tokenizer([r["dialogue"] for r in train], 8000, cfg.prompt.max_source_tokens)
    model = flan_t5_small_random(tokenizer)
    dialogues = to_dialogues(splits["test"])[: args.n]
    prompts = [build_prompt(d.dialogue, cfg.prompt.template) for d in dialogues]
    params = dataclasses.replace(cfg.generation, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
    gen = build_generation_config(params, model.config)

    start = time.perf_counter()
    single = one_at_a_time(model, tokenizer, prompts, gen, cfg.prompt.max_source_tokens)
    t_single = time.perf_counter() - start
    start = time.perf_counter()
    batched = generate_batched(model, tokenizer, prompts, params, batch_size=args.batch_size,
                               max_source_tokens=cfg.prompt.max_source_tokens, desc="batched")
    t_batched = time.perf_counter() - start
    result = {
        "dialogues": len(prompts), "new_tokens": args.new_tokens, "batch_size": args.batch_size,
        "threads": args.threads, "one_at_a_time_dialogues_per_s": round(len(prompts) / t_single, 3),
        "batched_dialogues_per_s": round(len(prompts) / t_batched, 3), "speedup": round(t_single / t_batched, 2),
        "identical_outputs": sum(a == b for a, b in zip(single, batched)),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
