"""Stage evaluate: one model variant on the test split — ROUGE (both protocols), BLEU, length and toxicity.

With ``generation.num_processes`` > 1 the stage relaunches itself under ``accelerate launch``: every process
generates a share of the dialogues, and rank 0 alone scores and writes.
"""

from __future__ import annotations

import logging

from summarizer.config import load_params
from summarizer.data import sample_dialogues
from summarizer.device import guard_large_model_on_cpu, select_runtime
from summarizer.flops import generation_flops, saved_model_split
from summarizer.evaluation import evaluate_system, prediction_records, to_dialogues, toxicity_summary
from summarizer.lexicon import LEXICON_SOURCE, offensive_words
from summarizer.backends import load_generator
from summarizer.generation import generate_sharded
from summarizer.io import read_jsonl, rounded, write_json, write_jsonl
from summarizer.launch import rank, relaunch_if_asked
from summarizer.scoring import bootstrap_ci
from summarizer.stage import parser, run_stage
from summarizer.tokenization import fitted_prompts
from summarizer.toxicity import load_toxicity_scorer

log = logging.getLogger("summarizer.evaluate")


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--variant", required=True, help="name recorded in the outputs (base, full, lora, ...)")
    p.add_argument("--model", required=True, help="a saved model, or a PEFT adapter over --base-model")
    p.add_argument("--base-model", required=True, help="tokenizer, and base of an adapter")
    p.add_argument("--converted", help="the variant converted for CTranslate2 (stage convert); without it, "
                                       "generation.backend ctranslate2 converts it now")
    p.add_argument("--classifier", required=True, help="the toxicity classifier")
    p.add_argument("--test", required=True, help="the prepared test split")
    p.add_argument("--out", required=True, help="per-dialogue predictions (.jsonl)")
    p.add_argument("--metrics", required=True)
    args = p.parse_args(argv)
    cfg = load_params(args.params)
    if relaunch_if_asked(argv, num_processes=cfg.generation.num_processes, config_file=None, device=cfg.device,
                         key="generation.num_processes"):
        return
    runtime = select_runtime(cfg.device, cfg.precision, deterministic=cfg.deterministic)
    dialogues = to_dialogues(sample_dialogues(read_jsonl(args.test), cfg.evaluate.max_dialogues, cfg.seed))
    split = saved_model_split(args.base_model)
    guard_large_model_on_cpu(runtime, split.total, what=f"evaluate {args.variant}",
                             flops=generation_flops(split, len(dialogues), cfg.prompt.max_source_tokens,
                                                    cfg.generation.max_new_tokens, cfg.generation.num_beams))
    generator = load_generator(args.model, args.base_model, args.converted, params=cfg.generation,
                               device=runtime.device, dtype=runtime.torch_dtype, attention=cfg.model.attention,
                               batch_size=cfg.generation.batch_size,
                               max_source_tokens=cfg.prompt.max_source_tokens)
    prompts, prompt_tokens = fitted_prompts(generator.tokenizer, [d.dialogue for d in dialogues],
                                            cfg.prompt.template, cfg.prompt.max_source_tokens)
    generations = generate_sharded(generator, prompts, cfg.generation, seed=cfg.seed,
                                   desc=f"evaluate {args.variant}")  # the log line above names the backend
    preds, backend = generations.texts, generator.backend_for(cfg.generation)
    del generator
    if rank() != 0:
        return  # the other processes only generate (generation.num_processes)

    metrics, scores = evaluate_system(dialogues, preds, **cfg.bootstrap)
    scorer = load_toxicity_scorer(args.classifier, cfg.classifier, device=runtime.device)
    toxicity = scorer.toxic_probability(preds)
    cut = sum(n > cfg.prompt.max_source_tokens for n in prompt_tokens)  # dialogues cut to fit, template whole
    metrics["prompts"] = {"dialogues": len(prompts), "dialogues_truncated": cut}
    metrics["generation"] = {"backend": backend, "truncated_share": round(generations.truncated_share, 4)}
    metrics["toxicity"] = toxicity_summary(toxicity, **cfg.bootstrap)
    # The share with a word of the lexicon: a measure of offensiveness that no variant was rewarded by (PPO's
    # reward is the classifier's), so that gaming the classifier is not mistaken for detoxifying.
    found = [offensive_words(p) for p in preds]
    metrics["toxicity"]["above_half_share"] = round(float((toxicity > 0.5).mean()), 4) if len(preds) else 0.0
    metrics["toxicity"]["offensive_share"] = rounded(bootstrap_ci([float(bool(f)) for f in found], **cfg.bootstrap))
    metrics["toxicity"]["lexicon"] = LEXICON_SOURCE
    records = prediction_records(dialogues, preds, scores, variant=args.variant)
    for record, tox, cut_short, words in zip(records, toxicity, generations.truncated, found):
        record["toxicity"], record["truncated"], record["offensive_words"] = float(tox), cut_short, words
    write_jsonl(args.out, records)
    write_json(args.metrics, {"variant": args.variant} | metrics)
    log.info("%s: ROUGE-1 %.4f, ROUGE-L %.4f (per_reference), toxicity %.4f; %.0f%% of outputs cut at "
             "max_new_tokens (%s)", args.variant, metrics["per_reference"]["rouge1"]["mean"],
             metrics["per_reference"]["rougeL"]["mean"], metrics["toxicity"]["mean"]["mean"],
             100 * generations.truncated_share, backend)


if __name__ == "__main__":
    run_stage(main)
