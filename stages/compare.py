"""Stage compare: each variant against the reference (base) model, paired bootstrap on the same dialogues."""

from __future__ import annotations

from pathlib import Path

from summarizer.config import load_config
from summarizer.evaluation import scores_from_records
from summarizer.io import read_jsonl, write_json
from summarizer.scoring import compare_systems
from summarizer.stage import parser, run_stage


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--reference", default="base", help="variant name of the reference system")
    p.add_argument("--predictions", nargs="+", required=True, help="data/predictions/<variant>.jsonl files")
    p.add_argument("--metrics", required=True)
    args = p.parse_args(argv)
    cfg = load_config(args.params)
    systems = {Path(f).stem: scores_from_records(read_jsonl(f)) for f in args.predictions}
    if args.reference not in systems:
        raise SystemExit(f"--reference {args.reference}: not among {', '.join(systems)}")
    reference = systems.pop(args.reference)
    sc = cfg.scoring
    out = {"reference": args.reference}
    for name, scores in systems.items():
        out[name] = compare_systems(scores, reference, resamples=sc.bootstrap_resamples, confidence=sc.confidence,
                                    seed=cfg.seed)
    write_json(args.metrics, out)


if __name__ == "__main__":
    run_stage(main)
