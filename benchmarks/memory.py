"""Memory: peak memory of LoRA against full fine-tuning, with and without activation checkpointing.

FLAN-T5-base's architecture with random weights (no Hub here), fp32 weights, AdamW, batch 8 (the default
`full.batch_size`) of DialogSum prompts cut and padded to 256 tokens with their summaries (64 tokens) as labels;
two optimizer steps per run (AdamW allocates its states at the end of the first, so the second step's backward,
with weights, states, gradients and activations all alive, is the peak), each run in a fresh process so that one
run's memory cannot hide in another's. LoRA is the project's (`lora.*` params: r=32 on q, v),
built by the same `wrap_model` and checkpointed the way the Trainer does it (`activation_checkpointing_enable`,
non-reentrant). Peak memory is the process's peak resident set size (this machine has no GPU), which includes
~0.5 GB of Python and torch.

    python benchmarks/memory.py [--data ../shared/data/dialogsum] [--batch-size 8] [--tokens 256] [--steps 2]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import T5ForConditionalGeneration

from benchmarks_common import ROOT, dialogsum_text, flan_t5_base_config, parser, report
from summarizer.config import load_params
from summarizer.prompts import build_prompt
from summarizer.training import LABEL_PAD, wrap_model

RUNS = (("full", False), ("full", True), ("lora", False), ("lora", True))


def batch(args, cfg):
    train, _, tokenizer = dialogsum_text(args.data, 0, n_train=args.batch_size)
    prompts = [build_prompt(r["dialogue"], cfg.prompt.template) for r in train]
    inputs = tokenizer(prompts, padding="max_length", truncation=True, max_length=args.tokens, return_tensors="pt")
    labels = tokenizer(text_target=[r["summary"] for r in train], padding="max_length", truncation=True,
                       max_length=64, return_tensors="pt").input_ids
    labels[labels == tokenizer.pad_token_id] = LABEL_PAD
    return {"input_ids": inputs.input_ids, "attention_mask": inputs.attention_mask, "labels": labels}


def one_run(args, method: str, checkpointing: bool) -> dict:
    """In a fresh process: build, train ``args.steps`` steps, report peak RSS and seconds per step."""
    cfg = load_params(ROOT / "params.yaml")
    inputs = batch(args, cfg)
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(flan_t5_base_config(dropout_rate=0.0))
    with tempfile.TemporaryDirectory() as tmp:  # wrap_model (prompt tuning) wants a tokenizer path; LoRA does not
        model = wrap_model(model, method, cfg.method(method), tmp)
    if checkpointing:
        model.activation_checkpointing_enable()
    model.config.use_cache = False
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    start = time.perf_counter()
    for _ in range(args.steps):
        model(**inputs).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    seconds = (time.perf_counter() - start) / args.steps
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # KiB on Linux
    return {"method": method, "checkpointing": checkpointing, "peak_gb": round(peak_gb, 2),
            "step_s": round(seconds, 1)}


def main(argv=None) -> dict | None:
    p = parser(__doc__)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--tokens", type=int, default=256, help="input tokens per example (padded)")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--run", help="(internal) METHOD:CHECKPOINTING, one run in this process")
    args = p.parse_args(argv)
    if args.run:
        method, ckpt = args.run.split(":")
        print(json.dumps(one_run(args, method, ckpt == "1")))
        return None
    results = []
    for method, ckpt in RUNS:
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--data", args.data, "--batch-size",
                              str(args.batch_size), "--tokens", str(args.tokens), "--steps", str(args.steps),
                              "--run", f"{method}:{int(ckpt)}"], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    by = {(r["method"], r["checkpointing"]): r for r in results}
    full, lora_ckpt = by[("full", False)], by[("lora", True)]
    figures = {"batch_size": args.batch_size, "tokens": args.tokens, "runs": results,
               "lora_checkpointed_vs_full": round(lora_ckpt["peak_gb"] / full["peak_gb"], 2),
               "lora_vs_full": round(by[("lora", False)]["peak_gb"] / full["peak_gb"], 2),
               "checkpointing_step_time_full": round(by[("full", True)]["step_s"] / full["step_s"], 2),
               "checkpointing_step_time_lora": round(lora_ckpt["step_s"] / by[("lora", False)]["step_s"], 2)}
    line = (f"memory (FLAN-T5-base architecture, batch {args.batch_size} x {args.tokens} tokens, peak RSS): full "
            f"{full['peak_gb']:.1f} GB, full+checkpointing {by[('full', True)]['peak_gb']:.1f} GB, LoRA "
            f"{by[('lora', False)]['peak_gb']:.1f} GB, LoRA+checkpointing {lora_ckpt['peak_gb']:.1f} GB = "
            f"{figures['lora_checkpointed_vs_full']:.2f}x full; checkpointing costs "
            f"{figures['checkpointing_step_time_full']:.2f}x (full) and {figures['checkpointing_step_time_lora']:.2f}x "
            f"(LoRA) step time")
    return report(line, figures, args.json)


if __name__ == "__main__":
    main()
