"""Data-parallel generation: `generate_sharded` in 2 processes against 1, on the same dialogues.

The two processes are started by `accelerate launch` exactly as the baseline and evaluate stages start them with
`generation.num_processes: 2`; each gets one thread (this machine has 2 cores), and so does the single process.
Same model (flan-t5-small's architecture, random weights), same DialogSum test dialogues, the project's greedy
generation config; the outputs are compared.

    python benchmarks/parallel_generation.py [--data ../shared/data/dialogsum] [--n 64] [--batch-size 16]
        [--new-tokens 48]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from benchmarks_common import ROOT, dialogsum_text, flan_t5_small_random, parser, report
from summarizer.config import load_params
from summarizer.generation import TransformersGenerator, generate_sharded
from summarizer.launch import LAUNCHED, launch_command, rank
from summarizer.prompts import build_prompt


def generate(args) -> tuple[list[str], float]:
    """Build the model and time generate_sharded (alone, or as one of the launched processes)."""
    torch.set_num_threads(1)
    cfg = load_params(ROOT / "params.yaml")
    _, dialogues, tokenizer = dialogsum_text(args.data, args.n)
    model = flan_t5_small_random(tokenizer)
    prompts = [build_prompt(d.dialogue, cfg.prompt.template) for d in dialogues]
    params = dataclasses.replace(cfg.generation, max_new_tokens=args.new_tokens)
    warm = TransformersGenerator(model, tokenizer, batch_size=2, max_source_tokens=512)
    generate_sharded(warm, prompts[:2], params, progress=False)  # warm-up (and the process group) outside the timing
    generator = TransformersGenerator(model, tokenizer, batch_size=args.batch_size,
                                      max_source_tokens=cfg.prompt.max_source_tokens)
    start = time.perf_counter()
    texts = generate_sharded(generator, prompts, params, progress=False).texts
    return texts, time.perf_counter() - start


def main(argv=None) -> dict | None:
    p = parser(__doc__)
    p.add_argument("--n", type=int, default=64, help="test dialogues")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)  # set in the launched processes: where rank 0 writes
    args = p.parse_args(argv)
    if args.worker_out:  # one of the two launched processes
        texts, seconds = generate(args)
        if rank() == 0:
            Path(args.worker_out).write_text(json.dumps({"texts": texts, "seconds": seconds}))
        return None

    single, t_one = generate(args)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "two.json"
        script = [str(Path(__file__).resolve()), "--data", args.data, "--n", str(args.n), "--batch-size",
                  str(args.batch_size), "--new-tokens", str(args.new_tokens), "--worker-out", str(out)]
        env = os.environ | {LAUNCHED: "1", "OMP_NUM_THREADS": "1"}
        subprocess.run(launch_command(script, num_processes=2, config_file=None), check=True, env=env)
        two = json.loads(out.read_text())
    same = sum(a == b for a, b in zip(single, two["texts"]))
    t_two = two["seconds"]
    figures = {"dialogues": args.n, "batch_size": args.batch_size, "max_new_tokens": args.new_tokens,
               "one_process_s": round(t_one, 2), "two_processes_s": round(t_two, 2),
               "speedup": round(t_one / t_two, 2), "identical_outputs": same}
    line = (f"data-parallel generation: 2 processes {t_two:.1f} s vs 1 process {t_one:.1f} s on {args.n} dialogues "
            f"(1 thread each, batch {args.batch_size}, {args.new_tokens} new tokens): {t_one / t_two:.2f}x faster, "
            f"{same}/{args.n} identical greedy outputs")
    return report(line, figures, args.json)


if __name__ == "__main__":
    main()
