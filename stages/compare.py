"""Stage compare: every variant against the base model, and toxicity before/after PPO, on the same dialogues."""

from __future__ import annotations

from pathlib import Path

from summarizer.config import load_params
from summarizer.evaluation import compare_variants, toxicity_before_after
from summarizer.io import read_jsonl, write_json
from summarizer.stage import parser, run_stage


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--reference", required=True, help="variant every other one is compared with (base)")
    p.add_argument("--predictions", nargs="+", required=True, help="data/predictions/<variant>.jsonl files")
    p.add_argument("--metrics", required=True)
    p.add_argument("--detox", nargs=2, required=True, metavar=("BEFORE", "AFTER"),
                   help="variants for toxicity before/after PPO")
    p.add_argument("--detox-metrics", required=True, help="where the before/after comparison goes")
    args = p.parse_args(argv)
    cfg = load_params(args.params)
    records = {Path(f).stem: read_jsonl(f) for f in args.predictions}
    missing = [v for v in (args.reference, *args.detox) if v not in records]
    if missing:
        p.error(f"{', '.join(missing)}: not among the --predictions ({', '.join(records)})")
    write_json(args.metrics, compare_variants(records, args.reference, **cfg.bootstrap))
    before, after = args.detox
    write_json(args.detox_metrics, toxicity_before_after(records[before], records[after], names=(before, after),
                                                         min_dialogues=cfg.ppo.min_eval_dialogues, **cfg.bootstrap))


if __name__ == "__main__":
    run_stage(main)
