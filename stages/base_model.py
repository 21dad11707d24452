"""Stage base_model: materialise the base summarizer (Hub id, local folder or tiny random T5) and its tokenizer."""

from __future__ import annotations

from summarizer.config import load_params
from summarizer.data import tokenizer_texts
from summarizer.io import read_jsonl, write_json
from summarizer.modeling import materialize_summarizer
from summarizer.stage import parser, run_stage


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--train", required=True, help="text for the tiny model's tokenizer")
    p.add_argument("--out", required=True, help="the saved model and tokenizer")
    p.add_argument("--metrics", required=True)
    args = p.parse_args(argv)
    cfg = load_params(args.params)
    texts = tokenizer_texts(read_jsonl(args.train))
    info = materialize_summarizer(cfg.model.name, cfg.model.revision, cfg.model.tiny, texts,
                                  cfg.prompt.max_source_tokens, cfg.seed, args.out)
    write_json(args.metrics, info)


if __name__ == "__main__":
    run_stage(main)
