"""Generation: the project's batched, length-sorted `generate_batched` against `Seq2SeqTrainer.predict`
(`predict_with_generate=True`) as Hugging Face's `run_summarization.py` runs it.

Same model (flan-t5-small's architecture with random weights: no Hub here), same DialogSum test dialogues in the
instruction prompt, same batch size, the project's greedy generation config with the same `max_new_tokens`.
`run_summarization.py` tokenizes sources and targets (labels), pads each batch with `DataCollatorForSeq2Seq`
(labels with -100) in dataset order, and `predict` also computes the loss on the labels; its predictions are
decoded as that script decodes them (-100 back to the pad id). The outputs of both are compared.

    python benchmarks/generation_vs_trainer.py [--data ../shared/data/dialogsum] [--n 48] [--batch-size 16]
        [--new-tokens 48] [--threads 1]
"""

from __future__ import annotations

import dataclasses
import tempfile
import time

import numpy as np
import torch
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

from benchmarks_common import ROOT, dialogsum_text, flan_t5_small_random, parser, report
from summarizer.config import load_params
from summarizer.generation import build_generation_config, generate_batched
from summarizer.prompts import build_prompt
from summarizer.training import LABEL_PAD


def trainer_predict(model, tokenizer, prompts, references, generation_config, *, batch_size, max_source_tokens,
                    max_target_tokens):
    """run_summarization.py's prediction path, with its preprocessing, collator and decoding."""
    inputs = tokenizer(prompts, max_length=max_source_tokens, truncation=True)
    labels = tokenizer(text_target=references, max_length=max_target_tokens, truncation=True)
    dataset = Dataset.from_dict({"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"],
                                 "labels": labels["input_ids"]})
    model.generation_config = generation_config
    with tempfile.TemporaryDirectory() as out:
        args = Seq2SeqTrainingArguments(output_dir=out, per_device_eval_batch_size=batch_size,
                                        predict_with_generate=True, report_to="none", use_cpu=True,
                                        disable_tqdm=True)
        trainer = Seq2SeqTrainer(model=model, args=args, processing_class=tokenizer,
                                 data_collator=DataCollatorForSeq2Seq(tokenizer, model=model,
                                                                      label_pad_token_id=LABEL_PAD))
        result = trainer.predict(dataset, metric_key_prefix="predict",
                                 max_new_tokens=generation_config.max_new_tokens, num_beams=1)
    predictions = np.where(result.predictions != LABEL_PAD, result.predictions, tokenizer.pad_token_id)
    return [t.strip() for t in tokenizer.batch_decode(predictions, skip_special_tokens=True)]


def main(argv=None) -> dict:
    p = parser(__doc__)
    p.add_argument("--n", type=int, default=48, help="test dialogues")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_params(ROOT / "params.yaml")
    _, dialogues, tokenizer = dialogsum_text(args.data, args.n)
    model = flan_t5_small_random(tokenizer)
    prompts = [build_prompt(d.dialogue, cfg.prompt.template) for d in dialogues]
    references = [d.references[0] for d in dialogues]
    params = dataclasses.replace(cfg.generation, max_new_tokens=args.new_tokens)
    gen = build_generation_config(params, model.config)

    start = time.perf_counter()
    theirs = trainer_predict(model, tokenizer, prompts, references, gen, batch_size=args.batch_size,
                             max_source_tokens=cfg.prompt.max_source_tokens,
                             max_target_tokens=cfg.prompt.max_target_tokens)
    t_trainer = time.perf_counter() - start
    start = time.perf_counter()
    ours = generate_batched(model, tokenizer, prompts, params, batch_size=args.batch_size,
                            max_source_tokens=cfg.prompt.max_source_tokens, progress=False)
    t_ours = time.perf_counter() - start
    same = sum(a == b for a, b in zip(ours, theirs))
    figures = {"dialogues": len(prompts), "batch_size": args.batch_size, "max_new_tokens": args.new_tokens,
               "threads": args.threads, "trainer_predict_s": round(t_trainer, 2),
               "generate_batched_s": round(t_ours, 2), "speedup": round(t_trainer / t_ours, 2),
               "identical_outputs": same}
    line = (f"generation: generate_batched {t_ours:.1f} s vs Seq2SeqTrainer.predict {t_trainer:.1f} s on "
            f"{len(prompts)} dialogues (batch {args.batch_size}, {args.new_tokens} new tokens, {args.threads} "
            f"thread(s)): {t_trainer / t_ours:.2f}x faster, {same}/{len(prompts)} identical greedy outputs")
    return report(line, figures, args.json)


if __name__ == "__main__":
    main()
