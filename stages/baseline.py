"""Stage baseline: the base model with every prompting strategy × generation setting, scored on the test split.

With ``generation.num_processes`` > 1 the stage relaunches itself under ``accelerate launch``: every process
generates a share of each setting's dialogues, and rank 0 alone scores and writes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from summarizer.config import load_params
from summarizer.data import sample_dialogues
from summarizer.device import guard_large_model_on_cpu, select_runtime
from summarizer.flops import generation_flops, saved_model_split
from summarizer.evaluation import evaluate_system, prediction_records, to_dialogues
from summarizer.backends import load_generator
from summarizer.generation import generate_sharded
from summarizer.io import read_jsonl, write_json, write_jsonl
from summarizer.launch import rank, relaunch_if_asked
from summarizer.prompts import ExamplePool, strategy_prompts
from summarizer.stage import parser, run_stage
from summarizer.tokenization import token_counter

log = logging.getLogger("summarizer.baseline")


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--data", required=True, help="folder with train.jsonl (examples) and test.jsonl")
    p.add_argument("--model", required=True, help="the base model")
    p.add_argument("--converted", help="the base model converted for CTranslate2 (stage convert); without it, "
                                       "generation.backend ctranslate2 converts it now")
    p.add_argument("--out", required=True, help="per-dialogue predictions of every strategy and setting (.jsonl)")
    p.add_argument("--metrics", required=True)
    args = p.parse_args(argv)
    cfg = load_params(args.params)
    if relaunch_if_asked(argv, num_processes=cfg.generation.num_processes, config_file=None, device=cfg.device,
                         key="generation.num_processes"):
        return
    runtime = select_runtime(cfg.device, cfg.precision, deterministic=cfg.deterministic)
    test = sample_dialogues(read_jsonl(Path(args.data) / "test.jsonl"), cfg.baseline.max_dialogues, cfg.seed)
    dialogues = to_dialogues(test)
    split = saved_model_split(args.model)
    passes = len(cfg.baseline.strategies) * sum(s.apply(cfg.generation).num_beams for s in cfg.baseline.settings)
    guard_large_model_on_cpu(runtime, split.total, what="baseline",
                             flops=generation_flops(split, len(dialogues) * passes, cfg.prompt.max_source_tokens,
                                                    cfg.generation.max_new_tokens))
    generator = load_generator(args.model, None, args.converted, params=cfg.generation, device=runtime.device,
                               dtype=runtime.torch_dtype, attention=cfg.model.attention,
                               batch_size=cfg.generation.batch_size,
                               max_source_tokens=cfg.prompt.max_source_tokens)
    count_tokens = token_counter(generator.tokenizer)
    pc = cfg.prompt
    pool = [(r["dialogue"], r["summary"]) for r in read_jsonl(Path(args.data) / "train.jsonl")]
    if {"one_shot", "few_shot"} & set(cfg.baseline.strategies):
        pool = ExamplePool(pool, pc.flan_template, count_tokens)  # measured once for one- and few-shot

    for setting in cfg.baseline.settings:  # a setting the backend cannot express fails now, not after hours
        generator.check(setting.apply(cfg.generation))
    metrics, records = {}, []
    for strategy in cfg.baseline.strategies:
        prompts, prompt_stats = strategy_prompts(
            strategy, [(d.dialogue_id, d.dialogue) for d in dialogues], pool, template=pc.template,
            flan_template=pc.flan_template, few_shot_examples=cfg.baseline.few_shot_examples, seed=cfg.seed,
            count_tokens=count_tokens, max_tokens=pc.max_source_tokens)
        examples_used = prompt_stats.pop("examples_used", None)  # per dialogue: in the records, not the metrics
        metrics[strategy] = {"prompts": prompt_stats}
        for setting in cfg.baseline.settings:
            out = generate_sharded(generator, prompts, setting.apply(cfg.generation), seed=cfg.seed,
                                   desc=f"{strategy}/{setting.name}")
            if rank() != 0:
                continue  # the other processes only generate
            result, scores = evaluate_system(dialogues, out.texts, **cfg.bootstrap)
            # the backend that generated this setting: CTranslate2 hands the beam searches it cannot reproduce on
            backend = generator.backend_for(setting.apply(cfg.generation))
            metrics[strategy][setting.name] = result | {"truncated_share": round(out.truncated_share, 4),
                                                       "backend": backend}
            new = prediction_records(dialogues, out.texts, scores, strategy=strategy, setting=setting.name)
            for record, cut in zip(new, out.truncated):
                record["truncated"] = cut
            for record, n in zip(new, examples_used or ()):
                record["examples_used"] = n
            records += new
            r = metrics[strategy][setting.name]["per_reference"]
            log.info("%s/%s: ROUGE-1 %.4f, ROUGE-L %.4f (per_reference)", strategy, setting.name,
                     r["rouge1"]["mean"], r["rougeL"]["mean"])
    if rank() == 0:
        write_jsonl(args.out, records)
        write_json(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
