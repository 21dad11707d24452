"""Where a full fine-tuning step of the learning profile spends its time, and what makes it cheaper.

Times the optimizer steps the Trainer would take — the same length-grouped batches (transformers'
``LengthGroupedSampler``), the same collator, AdamW — on a saved base (the pipeline's ``models/base``) and the
tokenized train split, split into collation, forward, backward and optimizer step, for each variant asked:

    python benchmarks/step_time.py [--base models/base] [--features data/tokenized] [--steps 40]
        [--batch-sizes 16 32] [--dropout 0.1 0.0] [--max-source 512 256] [--attention sdpa eager]
        [--threads 2] [--top-ops 10] [--json]

Reports samples per second, which is what decides an epoch's time; run it with the machine to yourself.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM
from transformers.trainer_pt_utils import LengthGroupedSampler

from summarizer.device import Runtime
from summarizer.io import read_jsonl
from summarizer.modeling import load_tokenizer
from summarizer.training import make_collator

from benchmarks_common import ROOT, parser, report


def time_steps(base: Path, rows: list[dict], *, batch_size: int, dropout: float, max_source: int, steps: int,
               attention: str = "sdpa", warmup: int = 3, seed: int = 0, top_ops: int = 0) -> dict:
    tokenizer = load_tokenizer(base)
    model = AutoModelForSeq2SeqLM.from_pretrained(str(base), dtype=torch.float32, attn_implementation=attention,
                                                  dropout_rate=dropout)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    collate = make_collator(tokenizer, model, Runtime("cpu", "fp32"))
    features = [{"input_ids": r["input_ids"][:max_source - 1] + r["input_ids"][-1:]
                 if len(r["input_ids"]) > max_source else r["input_ids"], "labels": r["labels"]} for r in rows]
    sampler = LengthGroupedSampler(batch_size, lengths=[len(f["input_ids"]) for f in features],
                                   generator=torch.Generator().manual_seed(seed))
    order = list(sampler)
    parts = {"collate": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    tokens = {"input": 0, "input_padded": 0, "target": 0}
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        batch = collate([features[i] for i in order[step * batch_size:(step + 1) * batch_size]])
        t1 = time.perf_counter()
        loss = model(**batch).loss
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        if step >= warmup:
            for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[key] += value
            tokens["input"] += int(batch["attention_mask"].sum())
            tokens["input_padded"] += batch["input_ids"].numel()
            tokens["target"] += int((batch["labels"] != -100).sum())
    total = sum(parts.values())
    if top_ops:  # which operators the time goes to, over 10 more steps (forward and backward)
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for step in range(warmup + steps, warmup + steps + 10):
                rows_of_step = [features[i] for i in order[step * batch_size:(step + 1) * batch_size]]
                model(**collate(rows_of_step)).loss.backward()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top_ops))
    return {"attention": attention, "batch_size": batch_size, "dropout": dropout, "max_source": max_source,
            "steps": steps,
            "s_per_step": round(total / steps, 4), "samples_per_s": round(steps * batch_size / total, 1),
            "share": {k: round(v / total, 3) for k, v in parts.items()},
            "padding_share": round(1 - tokens["input"] / tokens["input_padded"], 3),
            "mean_input_tokens": round(tokens["input_padded"] / (steps * batch_size), 1),
            "mean_target_tokens": round(tokens["target"] / (steps * batch_size), 1)}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--base", default=str(ROOT / "models/base"))
    p.add_argument("--features", default=str(ROOT / "data/tokenized"))
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[16])
    p.add_argument("--dropout", type=float, nargs="+", default=[0.1])
    p.add_argument("--max-source", type=int, nargs="+", default=[512])
    p.add_argument("--attention", nargs="+", default=["sdpa"], choices=["sdpa", "eager"])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--top-ops", type=int, default=0, help="also print the N operators with most time (torch.profiler)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = read_jsonl(Path(args.features) / "train.jsonl")
    results = []
    for attention, batch_size, dropout, max_source in itertools.product(args.attention, args.batch_sizes,
                                                                        args.dropout, args.max_source):
        r = time_steps(Path(args.base), rows, batch_size=batch_size, dropout=dropout, max_source=max_source,
                       steps=args.steps, attention=attention, top_ops=args.top_ops)
        results.append(r)
        print(f"{attention}, batch {batch_size:3d}, dropout {dropout}, source <= {max_source}: "
              f"{r['s_per_step']:.3f} s/step, "
              f"{r['samples_per_s']:.1f} samples/s (collate {r['share']['collate']:.0%}, forward "
              f"{r['share']['forward']:.0%}, backward {r['share']['backward']:.0%}, optimizer "
              f"{r['share']['optimizer']:.0%}); {r['mean_input_tokens']} input tokens a row "
              f"({r['padding_share']:.0%} padding), {r['mean_target_tokens']} target")
    report(f"{args.threads} threads, {args.steps} steps each", {"threads": args.threads, "results": results},
           args.json)


if __name__ == "__main__":
    main()
