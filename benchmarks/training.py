"""Training throughput: dynamic padding + length grouping (this project) against padding to 512 (the course labs).

Same model (flan-t5-small's architecture, random weights: no Hub here), same DialogSum train sample, same number of
optimizer steps and batch size. The course labs pad inputs *and* labels to 512 tokens (labels with the pad id, so
the loss is also spent predicting padding); this project pads each batch to its longest row, groups rows of similar
length into batches, and pads labels with -100.

    python benchmarks/training.py [--data ../shared/data/dialogsum] [--steps 12] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from summarizer.config import load_params
from summarizer.data import load_local_splits
from summarizer.device import Runtime
from summarizer.modeling import train_t5_tokenizer
from summarizer.tokenization import tokenize_rows
from summarizer.training import LABEL_PAD, make_collator

from benchmarks_common import DATA, ROOT, flan_t5_small_random


def batches_dynamic(features, tokenizer, model, batch_size, steps, seed):
    """Length-grouped batches (transformers' sampler, as the Trainer uses it), each padded to its longest row."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    sampler = LengthGroupedSampler(batch_size, lengths=[len(f["input_ids"]) for f in features],
                                   generator=torch.Generator().manual_seed(seed))
    order = list(sampler)[: steps * batch_size]
    collate = make_collator(tokenizer, model, Runtime("cpu", "fp32"))
    return [collate([{"input_ids": features[i]["input_ids"], "labels": features[i]["labels"]}
                     for i in order[s:s + batch_size]]) for s in range(0, len(order), batch_size)]


def batches_padded_to_512(rows, prompts, tokenizer, batch_size, steps, seed):
    """The course labs' preprocessing: padding="max_length" for the prompt and for the summary (pad id labels)."""
    order = random.Random(seed).sample(range(len(rows)), steps * batch_size)
    out = []
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        enc = tokenizer([prompts[i] for i in idx], padding="max_length", truncation=True, max_length=512,
                        return_tensors="pt")
        labels = tokenizer([rows[i]["summary"] for i in idx], padding="max_length", truncation=True, max_length=512,
                           return_tensors="pt").input_ids
        out.append({"input_ids": enc.input_ids, "attention_mask": enc.attention_mask, "labels": labels})
    return out


def padded_share(batches, pad_id):
    """Share of input and label positions that are padding."""
    pad = total = 0
    for b in batches:
        pad += int((b["input_ids"] == pad_id).sum()) + int(((b["labels"] == pad_id) | (b["labels"] == LABEL_PAD)).sum())
        total += b["input_ids"].numel() + b["labels"].numel()
    return pad / total


def time_training(model_factory, batches):
    model = model_factory().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    start = time.perf_counter()
    for batch in batches:
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return time.perf_counter() - start


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--sample", type=int, default=2000, help="train rows to draw batches from")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args(argv)
    cfg = load_params(ROOT / "params.yaml")
    rows = load_local_splits(args.data)["train"][: args.sample]
    tokenizer = train_t5_tokenizer([r["dialogue"] for r in rows], 8000, 512)
    factory = lambda: flan_t5_small_random(tokenizer)  # noqa: E731  (fresh, identically seeded weights)
    features, _ = tokenize_rows(rows, tokenizer, cfg.prompt.template, cfg.prompt.max_source_tokens,
                                cfg.prompt.max_target_tokens)
    prompts = [cfg.prompt.template.format(dialogue=r["dialogue"]) for r in rows]
    dynamic = batches_dynamic(features, tokenizer, factory(), args.batch_size, args.steps, cfg.seed)
    course = batches_padded_to_512(rows, prompts, tokenizer, args.batch_size, args.steps, cfg.seed)
    t_dyn, t_course = time_training(factory, dynamic), time_training(factory, course)
    n = args.steps * args.batch_size
    result = {
        "steps": args.steps, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
        "padded_to_512": {"samples_per_s": round(n / t_course, 3),
                          "padded_share": round(padded_share(course, tokenizer.pad_token_id), 4)},
        "dynamic_grouped": {"samples_per_s": round(n / t_dyn, 3),
                            "padded_share": round(padded_share(dynamic, tokenizer.pad_token_id), 4)},
        "speedup": round(t_course / t_dyn, 2),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
