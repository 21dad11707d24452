"""Stage references: summaries made without a model (Lead-k, Longest-k, one constant summary, a greedy oracle),
scored like the models on the same test dialogues, so that every model's score can be read against them."""

from __future__ import annotations

import logging
from pathlib import Path

from summarizer.config import load_params
from summarizer.data import sample_dialogues
from summarizer.evaluation import evaluate_system, prediction_records, to_dialogues
from summarizer.io import read_jsonl, write_json, write_jsonl
from summarizer.references import REFERENCE_SYSTEMS, constant_summary, reference_summaries
from summarizer.stage import parser, run_stage

log = logging.getLogger("summarizer.references")

# What each one is, in the metrics and the report.
DESCRIPTIONS = {
    "lead": "the first {k} turns",
    "longest": "the {k} longest turns, in dialogue order",
    "constant": "one summary for every dialogue, chosen on the train split",
    "oracle": "greedy extractive oracle (ROUGE-1+2), not an upper bound: turns added greedily while they raise the "
              "mean of ROUGE-1 and ROUGE-2 against the dialogue's own references (uses them)",
}


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--data", required=True, help="folder with train.jsonl (the constant summary) and test.jsonl")
    p.add_argument("--out", required=True, help="folder: <system>.jsonl per-dialogue records")
    p.add_argument("--metrics", required=True)
    args = p.parse_args(argv)
    cfg = load_params(args.params)
    rc = cfg.references
    dialogues = to_dialogues(sample_dialogues(read_jsonl(Path(args.data) / "test.jsonl"), cfg.evaluate.max_dialogues,
                                              cfg.seed))
    train = read_jsonl(Path(args.data) / "train.jsonl")
    constant, agreement = constant_summary([r["summary"] for r in train], pool=rc.constant_pool, seed=cfg.seed)
    metrics = {}
    for name in REFERENCE_SYSTEMS:
        preds = reference_summaries(name, dialogues, k=rc.k, constant=constant)
        metrics[name], scores = evaluate_system(dialogues, preds, **cfg.bootstrap)
        metrics[name] = {"description": DESCRIPTIONS[name].format(k=rc.k), "uses_references": name == "oracle",
                         **metrics[name]}
        write_jsonl(Path(args.out) / f"{name}.jsonl", prediction_records(dialogues, preds, scores, variant=name))
        r = metrics[name]["per_reference"]
        log.info("%s: ROUGE-1 %.4f, ROUGE-2 %.4f, ROUGE-L %.4f (per_reference)", name, r["rouge1"]["mean"],
                 r["rouge2"]["mean"], r["rougeL"]["mean"])
    metrics["lead"]["k"] = metrics["longest"]["k"] = rc.k
    # Its id, not its text: metrics/ is committed to git, and DialogSum's text stays out of it (CC BY-NC-SA). The
    # text is in data/references/constant.jsonl.
    metrics["constant"]["summary_id"] = next(r["id"] for r in train if r["summary"] == constant)
    metrics["constant"]["train_agreement"] = round(agreement, 6)  # mean ROUGE-1/2 against other train summaries
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
