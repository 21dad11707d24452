"""Stage classifier: materialise the toxicity classifier (Hub id, local folder or tiny random RoBERTa)."""

from __future__ import annotations

from summarizer.config import load_config
from summarizer.io import read_jsonl, write_json
from summarizer.modeling import materialize_classifier
from summarizer.stage import parser, run_stage


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--train", default="data/prepared/train.jsonl", help="text for the tiny model's tokenizer")
    p.add_argument("--out", default="models/classifier")
    p.add_argument("--metrics", default="metrics/models/classifier.json")
    args = p.parse_args(argv)
    cfg = load_config(args.params)
    c = cfg.classifier
    rows = read_jsonl(args.train)
    texts = [r["dialogue"] for r in rows] + [r["summary"] for r in rows]
    info = materialize_classifier(c.name, c.revision, c.tiny, texts, c.max_tokens, c.toxic_label, c.nontoxic_label,
                                  cfg.seed, args.out)
    write_json(args.metrics, info)


if __name__ == "__main__":
    run_stage(main)
