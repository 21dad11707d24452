"""Stage report: figures (PNG + the CSV behind each), error analysis and the markdown results table."""

from __future__ import annotations

from pathlib import Path

from summarizer.config import load_params
from summarizer.report import ReportPaths, write_report
from summarizer.stage import parser, run_stage


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--metrics-dir", type=Path, required=True, help="the pipeline's metrics/ folder")
    p.add_argument("--predictions", type=Path, required=True, help="folder of <variant>.jsonl predictions")
    p.add_argument("--test", type=Path, required=True, help="the prepared test split")
    p.add_argument("--dvclive", type=Path, required=True, help="folder of the methods' DVCLive curves")
    p.add_argument("--plots", type=Path, required=True, help="PNGs here, the CSVs behind them in <plots>/data")
    p.add_argument("--worst", type=Path, required=True, help="per-variant worst examples (quote the dataset)")
    p.add_argument("--table", type=Path, required=True, help="the markdown results table")
    p.add_argument("--errors", type=Path, required=True, help="error-category counts and shares (JSON)")
    p.add_argument("--ablation", type=Path, help="the PPO ablation's metrics (scripts/ppo_ablation.py), if run")
    args = p.parse_args(argv)
    cfg = load_params(args.params)
    paths = ReportPaths(metrics_dir=args.metrics_dir, predictions=args.predictions, test=args.test,
                        dvclive=args.dvclive, plots=args.plots, worst=args.worst, table=args.table,
                        errors=args.errors, ablation=args.ablation)
    write_report(paths, cfg.report)


if __name__ == "__main__":
    run_stage(main)
