"""Stage report: figures (PNG + the CSV behind each), error analysis and the markdown results table."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from summarizer import plots
from summarizer.analysis import Thresholds
from summarizer.config import load_config
from summarizer.io import atomic_write_text, read_json, read_jsonl, write_json
from summarizer.report import (baseline_table, flag_records, flag_shares, length_tables, loss_table,
                               read_tsv_curve, results_markdown, rouge_table, worst_examples)
from summarizer.stage import parser, run_stage

log = logging.getLogger("summarizer.report")
VARIANTS = ("base", "full", "lora", "prompt_tuning", "ppo")
METHODS = ("full", "lora", "prompt_tuning")


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--metrics-dir", default="metrics")
    p.add_argument("--predictions", default="data/predictions")
    p.add_argument("--test", default="data/prepared/test.jsonl")
    p.add_argument("--dvclive", default="dvclive")
    p.add_argument("--plots", default="plots", help="PNGs here, the CSVs behind them in <plots>/data")
    p.add_argument("--worst", default="data/report/worst", help="per-variant worst examples (quote the dataset)")
    p.add_argument("--table", default="metrics/README.md")
    p.add_argument("--errors", default="metrics/errors.json")
    args = p.parse_args(argv)
    cfg = load_config(args.params)
    m, out, data = Path(args.metrics_dir), Path(args.plots), Path(args.plots) / "data"
    tiny = read_json(m / "models/base.json")["source"] == "tiny-random"
    note = plots.SUBTITLE if tiny else None

    evals = {v: read_json(m / f"eval/{v}.json") for v in VARIANTS}
    comparison = read_json(m / "eval/comparison.json")
    training = {v: read_json(m / f"train/{v}.json") for v in (*METHODS, "ppo")}
    records = {v: read_jsonl(Path(args.predictions) / f"{v}.jsonl") for v in VARIANTS}
    dialogues = {r["dialogue_id"]: r["dialogue"] for r in read_jsonl(args.test)}

    plots.rouge_by_variant(rouge_table(evals), out / "rouge_by_variant.png", data / "rouge_by_variant.csv", note)
    plots.baseline_heatmap(baseline_table(read_json(m / "baseline.json")), out / "baseline_heatmap.png",
                           data / "baseline_heatmap.csv", "ROUGE-L (per_reference)", note)
    curves = {method: {
        "train": read_tsv_curve((Path(args.dvclive) / method / "plots/metrics/loss.tsv").read_text(), "loss"),
        "validation": read_tsv_curve((Path(args.dvclive) / method / "plots/metrics/eval/loss.tsv").read_text(),
                                     "loss"),
    } for method in METHODS}
    plots.loss_curves(loss_table(curves), out / "loss_curves.png", data / "loss_curves.csv", note)
    detox = read_json(m / "ppo.json")
    before, after = detox["before"]["variant"], detox["after"]["variant"]
    tox = pd.DataFrame([{"model": f"{label}: {v}", "dialogue_id": r["dialogue_id"], "toxicity": r["toxicity"]}
                        for label, v in (("before PPO", before), ("after PPO", after)) for r in records[v]])
    plots.toxicity_before_after(tox, out / "toxicity_before_after.png", data / "toxicity_before_after.csv", note)
    box, scatter = length_tables(records)
    plots.length_box(box, out / "length_box.png", data / "length_box.csv", note)
    plots.length_scatter(scatter, out / "length_scatter.png", data / "length_scatter.csv", note)

    rc = cfg.report
    thresholds = Thresholds(min_words=rc.min_words, max_length_ratio=rc.max_length_ratio,
                            missing_info=rc.missing_info)
    flags = {v: flag_records(records[v], dialogues, thresholds) for v in VARIANTS}
    shares = flag_shares(flags)
    plots.error_categories(shares, out / "error_categories.png", data / "error_categories.csv", note)
    write_json(args.errors, {v: {row.flag: {"count": int(row.count), "share": round(row.share, 4)}
                                 for row in shares[shares.variant == v].itertuples()} for v in VARIANTS})
    for v in VARIANTS:
        table = worst_examples(records[v], flags[v], dialogues, rc.worst_examples)
        atomic_write_text(Path(args.worst) / f"{v}.csv", table.to_csv(index=False))
    atomic_write_text(args.table, results_markdown(evals, comparison, training, alpha=rc.significance,
                                                   note=("Scores of tiny random models: meaningless, they only show "
                                                         "the pipeline works") if tiny else None))
    log.info("wrote %s, %s and figures in %s", args.table, args.errors, out)


if __name__ == "__main__":
    run_stage(main)
