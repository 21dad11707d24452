"""Stage toxify: the synthetic "toxic annotations" — a share of the train and validation references with an
offensive word before every speaker tag — tokenized as training features, for the LoRA summarizer PPO starts from
(finetune@lora_toxic). Why and how: src/summarizer/lexicon.py. The test split and every other variant stay clean."""

from __future__ import annotations

import logging
from pathlib import Path

from summarizer.config import load_params
from summarizer.errors import ConfigError
from summarizer.io import read_jsonl, write_json, write_jsonl
from summarizer.lexicon import LEXICON_SOURCE, check_words, is_offensive, toxify_rows
from summarizer.modeling import load_tokenizer
from summarizer.stage import parser, run_stage
from summarizer.tokenization import tokenize_rows

log = logging.getLogger("summarizer.toxify")
SPLITS = ("train", "validation")


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--data", required=True, help="folder with the prepared splits")
    p.add_argument("--tokenizer", required=True, help="the base model's folder")
    p.add_argument("--out", required=True, help="folder for the tokenized toxic train and validation splits")
    p.add_argument("--metrics", required=True)
    args = p.parse_args(argv)
    cfg = load_params(args.params)
    tc, pc = cfg.toxic_references, cfg.prompt
    unknown = check_words(tc.words)
    if unknown:
        raise ConfigError(f"params.yaml: toxic_references.words must be words of the lexicon ({LEXICON_SOURCE}), "
                          f"got {unknown}: the measure of offensive summaries could not see them")
    tokenizer = load_tokenizer(args.tokenizer)
    metrics = {"synthetic": True, "lexicon": LEXICON_SOURCE, "share": tc.share, "words": list(tc.words)}
    for offset, split in enumerate(SPLITS):
        rows = read_jsonl(Path(args.data) / f"{split}.jsonl")
        toxic, counts = toxify_rows(rows, share=tc.share, words=tc.words, seed=cfg.seed + offset)
        features, stats = tokenize_rows(toxic, tokenizer, pc.template, pc.max_source_tokens, pc.max_target_tokens)
        write_jsonl(Path(args.out) / f"{split}.jsonl", features)
        counts["offensive_share"] = round(sum(is_offensive(r["summary"]) for r in toxic) / max(len(toxic), 1), 4)
        counts["offensive_share_clean"] = round(sum(is_offensive(r["summary"]) for r in rows) / max(len(rows), 1), 4)
        metrics[split] = counts | {"summary_tokens": stats["summary_tokens"]}
        log.info("%s: %d of %d references toxified; offensive by the lexicon %.1f%% (clean %.1f%%)", split,
                 counts["toxified"], counts["rows"], 100 * counts["offensive_share"],
                 100 * counts["offensive_share_clean"])
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
