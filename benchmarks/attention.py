"""Attention on a CPU: transformers' eager attention against SDPA (what `model.attention: auto` chooses from).

Greedy generation of the first ``--n`` DialogSum test dialogues in the instruction prompt, exactly ``--new-tokens``
new tokens each, batch 16, through the project's generator, twice per implementation (the second run counts), for
two shapes with random weights: the learning profile's small T5 (d_model 128, 3 + 3 layers) and flan-t5-small's.
FLAN-T5-base's shape is in benchmarks/generation_backends.py.

    python benchmarks/attention.py [--n 64] [--new-tokens 48] [--json]
"""

from __future__ import annotations

import dataclasses
import time

from transformers import T5ForConditionalGeneration

from summarizer.config import load_params
from summarizer.data import load_local_splits
from summarizer.evaluation import to_dialogues
from summarizer.generation import TransformersGenerator
from summarizer.modeling import train_t5_tokenizer
from summarizer.prompts import build_prompt

from benchmarks_common import ROOT, flan_t5_base_config, flan_t5_small_random, parser, report


def main(argv=None) -> dict:
    p = parser(__doc__)
    p.add_argument("--n", type=int, default=64, help="test dialogues")
    p.add_argument("--new-tokens", type=int, default=48)
    args = p.parse_args(argv)
    cfg = load_params(ROOT / "params.yaml")
    splits = load_local_splits(args.data)
    tokenizer = train_t5_tokenizer([r["dialogue"] for r in splits["train"][:3000]], 8000, 512)
    prompts = [build_prompt(d.dialogue, cfg.prompt.template) for d in to_dialogues(splits["test"])[: args.n]]
    params = dataclasses.replace(cfg.generation, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
    shapes = {"learning profile (d_model 128, 3+3 layers)": T5ForConditionalGeneration(flan_t5_base_config(
                  vocab_size=len(tokenizer), d_model=128, d_ff=512, d_kv=32, num_heads=4, num_layers=3,
                  num_decoder_layers=3)),
              "flan-t5-small": flan_t5_small_random(tokenizer)}
    figures: dict = {"dialogues": len(prompts), "new_tokens": args.new_tokens, "shapes": {}}
    for name, model in shapes.items():
        model.eval()
        seconds, texts = {}, {}
        for attention in ("eager", "sdpa"):
            model.set_attn_implementation(attention)
            generator = TransformersGenerator(model, tokenizer, batch_size=16, max_source_tokens=512)
            for _ in range(2):  # the first run warms up
                start = time.perf_counter()
                texts[attention] = generator.generate(prompts, params, progress=False).texts
                seconds[attention] = time.perf_counter() - start
        figures["shapes"][name] = {"eager_s": round(seconds["eager"], 2), "sdpa_s": round(seconds["sdpa"], 2),
                                   "eager_speed_vs_sdpa": round(seconds["sdpa"] / seconds["eager"], 2),
                                   "identical_outputs": sum(a == b for a, b in zip(texts["eager"], texts["sdpa"]))}
    line = "attention on this CPU, eager at x SDPA's speed: " + ", ".join(
        f"{k} {v['eager_speed_vs_sdpa']:.2f}x ({v['identical_outputs']}/{len(prompts)} identical)"
        for k, v in figures["shapes"].items())
    return report(line, figures, args.json)


if __name__ == "__main__":
    main()
