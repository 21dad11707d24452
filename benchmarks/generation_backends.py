"""Generation backends: CTranslate2 (float32, int8) against transformers (eager and SDPA attention).

(Not named ctranslate2.py: run as a script, a file of that name would hide the ctranslate2 package.)

FLAN-T5-base's architecture with random weights (no Hub here), a BPE vocabulary trained on DialogSum's train
dialogues, the first ``--n`` test dialogues in the instruction prompt, greedy decoding with exactly
``--new-tokens`` new tokens for every output (min_new_tokens = max_new_tokens, so every backend does the same
decoding work), the same length-sorted batches and the same number of threads. Both backends run through the
project's own generators (``summarizer.generation``), as the pipeline runs them. Outputs are compared token for
token with the transformers path.

    python benchmarks/generation_backends.py [--n 64] [--batch-size 16] [--new-tokens 64] [--threads N] [--json]
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from transformers import T5ForConditionalGeneration

from summarizer import ct2
from summarizer.config import load_params
from summarizer.data import load_local_splits
from summarizer.evaluation import to_dialogues
from summarizer.generation import TransformersGenerator
from summarizer.modeling import train_t5_tokenizer
from summarizer.prompts import build_prompt

from benchmarks_common import ROOT, flan_t5_base_config, parser, report


def _timed(generator, prompts, params, batch_size) -> tuple[list[list[int]], float]:
    """Token ids of every prompt (the generator's own length-sorted batching) and the seconds it took."""
    generator.batch_size = batch_size
    encoded = generator.tokenizer(prompts, truncation=True, max_length=generator.max_source_tokens)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    generator.generate_ids([encoded[order[0]]], dataclasses.replace(params, max_new_tokens=2,
                                                                    min_new_tokens=2))  # warm-up
    ids: list[list[int] | None] = [None] * len(prompts)
    start = time.perf_counter()
    for i in range(0, len(order), batch_size):
        batch = order[i:i + batch_size]
        for j, out in zip(batch, generator.generate_ids([encoded[j] for j in batch], params)):
            ids[j] = out
    return ids, time.perf_counter() - start  # type: ignore[return-value]


def main(argv=None) -> dict:
    p = parser(__doc__)
    p.add_argument("--n", type=int, default=64, help="test dialogues")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--compute-types", nargs="+", default=["float32", "int8"])
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_params(ROOT / "params.yaml")
    splits = load_local_splits(args.data)
    tokenizer = train_t5_tokenizer([r["dialogue"] for r in splits["train"]], 32128, cfg.prompt.max_source_tokens)
    prompts = [build_prompt(d.dialogue, cfg.prompt.template) for d in to_dialogues(splits["test"])[: args.n]]
    params = dataclasses.replace(cfg.generation, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                 num_beams=1, do_sample=False)
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(flan_t5_base_config(vocab_size=len(tokenizer))).eval()
    n_params = sum(t.numel() for t in model.parameters())
    figures: dict = {"model": f"FLAN-T5-base architecture, random weights ({n_params / 1e6:.0f} M parameters, "
                              f"vocabulary {len(tokenizer):,})", "dialogues": len(prompts),
                     "new_tokens": args.new_tokens, "batch_size": args.batch_size, "threads": args.threads,
                     "runs": {}}
    results = {}
    for attention in ("eager", "sdpa"):
        model.set_attn_implementation(attention)
        hf = TransformersGenerator(model, tokenizer, batch_size=args.batch_size,
                                   max_source_tokens=cfg.prompt.max_source_tokens)
        results[f"transformers/{attention}"] = _timed(hf, prompts, params, args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        ct2.convert_variant(tmp, None, Path(tmp) / "ct2")
        for compute_type in args.compute_types:
            fast = ct2.CTranslate2Generator(Path(tmp) / "ct2", tokenizer, device="cpu", compute_type=compute_type,
                                            batch_size=args.batch_size,
                                            max_source_tokens=cfg.prompt.max_source_tokens)
            results[f"ctranslate2/{compute_type}"] = _timed(fast, prompts, params, args.batch_size)
    best_hf = min(("transformers/eager", "transformers/sdpa"), key=lambda k: results[k][1])
    reference_ids, reference_s = results[best_hf]
    for name, (ids, seconds) in results.items():
        figures["runs"][name] = {"seconds": round(seconds, 2),
                                 "new_tokens_per_s": round(len(prompts) * args.new_tokens / seconds, 1),
                                 "speedup_vs_best_transformers": round(reference_s / seconds, 2),
                                 "identical_outputs": sum(a == b for a, b in zip(ids, reference_ids))}
    figures["best_transformers"] = best_hf
    runs = figures["runs"]
    line = (f"ctranslate2 ({args.threads} threads, batch {args.batch_size}, {len(prompts)} dialogues × "
            f"{args.new_tokens} tokens, vs {best_hf} {reference_s:.1f} s): "
            + ", ".join(f"{k.split('/')[1]} {runs[k]['speedup_vs_best_transformers']:.2f}× "
                        f"({runs[k]['identical_outputs']}/{len(prompts)} identical)"
                        for k in runs if k.startswith("ctranslate2"))
            + f"; eager attention {runs['transformers/sdpa']['seconds'] / runs['transformers/eager']['seconds']:.2f}× "
            "sdpa's speed")
    return report(line, figures, args.json)


if __name__ == "__main__":
    main()
