"""How many steps does the learning profile's T5 need to learn to copy its input? A toy, no DialogSum.

Each step trains on a fresh batch of random token sequences of ``--length`` tokens, the target being the input
itself: the simplest task in which the decoder must read the encoder. T5 has no absolute positions (relative biases
in self-attention only, none in cross-attention), so it has to learn to find "where it is" in the input by content
before copying gets easier; a model that has not learned that is stuck near ln(vocab) whatever it is given. Prints the
loss and the teacher-forced accuracy on the step's batch every ``--every`` steps.

    python benchmarks/copy_learning.py [--length 16] [--steps 2400] [--lr 3e-3] [--init 0.1] [--seed 0] [--json]

The shape is read from the learning profile (configs/laptop.yaml, ``model.tiny``); AdamW at a fixed rate, no
warmup: the point is when the copy appears, not the best way to reach it.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch
import yaml
from transformers import T5ForConditionalGeneration

from benchmarks_common import ROOT, parser, report
from summarizer.config import TinyT5Params
from summarizer.modeling import build_tiny_t5


class _Vocab:
    """What ``build_tiny_t5`` reads of a tokenizer: the vocabulary size and the pad / EOS ids (T5's 0 and 1)."""

    pad_token_id, eos_token_id = 0, 1

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size


def profile_t5(init: float, seed: int) -> T5ForConditionalGeneration:
    """The learning profile's T5 as its pretraining builds it (configs/laptop.yaml ``model.tiny``, the attention's
    initialisation and the pretraining's dropout included), its initializer_factor replaced by ``init``."""
    profile = yaml.safe_load((ROOT / "configs/laptop.yaml").read_text())["model"]
    tiny = TinyT5Params(**profile["tiny"])
    return build_tiny_t5(replace(tiny, initializer_factor=init), _Vocab(tiny.vocab_size), seed,
                         dropout=profile["pretrain"]["dropout"])


def copy_curve(length: int, steps: int, lr: float, init: float, every: int, seed: int = 0) -> list[dict]:
    model = profile_t5(init, seed)  # seeds torch: the batches below follow from the seed too
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    vocab = model.config.vocab_size
    curve, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        batch = torch.randint(3, vocab, (16, length))  # ids 0-2 are pad, EOS, unk
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % every == 0:
            with torch.no_grad():
                accuracy = (model(input_ids=batch, labels=batch).logits.argmax(-1) == batch).float().mean().item()
            curve.append({"step": step, "loss": round(loss.item(), 3), "accuracy": round(accuracy, 3),
                          "seconds": round(time.perf_counter() - start)})
    return curve


def main(argv=None) -> dict:
    p = parser(__doc__)
    p.add_argument("--length", type=int, default=16, help="tokens per sequence")
    p.add_argument("--steps", type=int, default=2400)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--init", type=float, default=0.1, help="initializer_factor (the profile's: 0.1)")
    p.add_argument("--every", type=int, default=200, help="report every N steps")
    p.add_argument("--seed", type=int, default=0, help="the model's initialisation and the batches")
    args = p.parse_args(argv)
    curve = copy_curve(args.length, args.steps, args.lr, args.init, args.every, args.seed)
    line = f"copying {args.length} random tokens: " + ", ".join(
        f"step {c['step']} loss {c['loss']} accuracy {c['accuracy']}" for c in curve)
    return report(line, {"length": args.length, "lr": args.lr, "init": args.init, "curve": curve}, args.json)


if __name__ == "__main__":
    main()
