"""Stage classifier: materialise the toxicity classifier (Hub id, local folder or tiny random RoBERTa)."""

from __future__ import annotations

from summarizer.config import load_params
from summarizer.data import tokenizer_texts
from summarizer.hub import recorded
from summarizer.io import read_jsonl, write_json
from summarizer.modeling import materialize_classifier
from summarizer.stage import parser, run_stage


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--train", required=True, help="text for the tiny model's tokenizer")
    p.add_argument("--out", required=True, help="the saved classifier and tokenizer")
    p.add_argument("--metrics", required=True)
    p.add_argument("--hub", help="the commit stage hub_revisions resolved (default: the params' revision as is)")
    args = p.parse_args(argv)
    cfg = load_params(args.params)
    c = cfg.classifier
    texts = tokenizer_texts(read_jsonl(args.train))
    hub = recorded(args.hub, c.name, c.revision)
    info = materialize_classifier(c.name, hub.load_revision(), c.tiny, texts, c.max_tokens, c.toxic_label,
                                  c.nontoxic_label, cfg.seed, args.out)
    if hub.revision is not None:  # from the Hub: the params' revision and the commit it resolved to
        info |= {"revision": hub.revision, "commit": hub.commit}
    write_json(args.metrics, info)


if __name__ == "__main__":
    run_stage(main)
