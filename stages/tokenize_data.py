"""Stage tokenize: instruction prompt → input_ids and summary → labels for train and validation (unpadded)."""

from __future__ import annotations

from pathlib import Path

from summarizer.config import load_params
from summarizer.data import SPLITS
from summarizer.io import read_jsonl, write_json, write_jsonl
from summarizer.modeling import load_tokenizer
from summarizer.stage import parser, run_stage
from summarizer.tokenization import tokenize_rows

FEATURE_SPLITS = ("train", "validation")


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--data", required=True, help="folder with the prepared splits")
    p.add_argument("--tokenizer", required=True, help="the base model's folder")
    p.add_argument("--out", required=True, help="folder for the tokenized train and validation splits")
    p.add_argument("--metrics", required=True)
    args = p.parse_args(argv)
    cfg = load_params(args.params)
    tokenizer = load_tokenizer(args.tokenizer)
    pc = cfg.prompt
    stats = {}
    for split in SPLITS:  # statistics for all splits; features only where training reads them
        rows = read_jsonl(Path(args.data) / f"{split}.jsonl")
        features, stats[split] = tokenize_rows(rows, tokenizer, pc.template, pc.max_source_tokens,
                                               pc.max_target_tokens)
        if split in FEATURE_SPLITS:
            write_jsonl(Path(args.out) / f"{split}.jsonl", features)
    write_json(args.metrics, {"max_source_tokens": pc.max_source_tokens,
                              "max_target_tokens": pc.max_target_tokens} | stats)


if __name__ == "__main__":
    run_stage(main)
