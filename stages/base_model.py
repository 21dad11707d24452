"""Stage base_model: materialise the base summarizer (Hub id, local folder or tiny random T5) and its tokenizer."""

from __future__ import annotations

from summarizer.config import load_config
from summarizer.io import read_jsonl, write_json
from summarizer.modeling import materialize_summarizer
from summarizer.stage import parser, run_stage


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--train", default="data/prepared/train.jsonl", help="text for the tiny model's tokenizer")
    p.add_argument("--out", default="models/base")
    p.add_argument("--metrics", default="metrics/models/base.json")
    args = p.parse_args(argv)
    cfg = load_config(args.params)
    rows = read_jsonl(args.train)
    texts = [r["dialogue"] for r in rows] + [r["summary"] for r in rows]
    info = materialize_summarizer(cfg.model.name, cfg.model.revision, cfg.model.tiny, texts,
                                  cfg.prompt.max_source_tokens, cfg.seed, args.out)
    write_json(args.metrics, info)


if __name__ == "__main__":
    run_stage(main)
