"""Stage compare: every variant against the base model and against the reference baselines (Lead-k, the constant
summary), and toxicity before/after PPO, all paired on the same dialogues."""

from __future__ import annotations

from pathlib import Path

from summarizer.config import load_params
from summarizer.evaluation import compare_variants, toxicity_before_after
from summarizer.io import read_jsonl, write_json
from summarizer.stage import parser, run_stage


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--against", nargs="+", required=True,
                   help="what every variant is compared with: a variant (base) or a reference system (lead, ...)")
    p.add_argument("--predictions", nargs="+", required=True, help="data/predictions/<variant>.jsonl files")
    p.add_argument("--references", nargs="*", default=[], help="data/references/<system>.jsonl files")
    p.add_argument("--metrics", required=True)
    p.add_argument("--detox", nargs=2, required=True, metavar=("BEFORE", "AFTER"),
                   help="variants for toxicity before/after PPO")
    p.add_argument("--detox-metrics", required=True, help="where the before/after comparison goes")
    args = p.parse_args(argv)
    cfg = load_params(args.params)
    records = {Path(f).stem: read_jsonl(f) for f in args.predictions}
    references = {Path(f).stem: read_jsonl(f) for f in args.references}
    missing = [v for v in args.detox if v not in records] + [v for v in args.against
                                                              if v not in records and v not in references]
    if missing:
        p.error(f"{', '.join(missing)}: not among the --predictions or --references "
                f"({', '.join([*records, *references])})")
    # Keyed by what is compared against: vs_base.full.per_reference.rougeL is full − base (paired bootstrap).
    comparisons = {}
    for against in args.against:
        systems = records if against in records else {**records, against: references[against]}
        comparisons[f"vs_{against}"] = compare_variants(systems, against, **cfg.bootstrap)
    write_json(args.metrics, comparisons)
    before, after = args.detox
    write_json(args.detox_metrics, toxicity_before_after(records[before], records[after], names=(before, after),
                                                         min_dialogues=cfg.ppo.min_eval_dialogues, **cfg.bootstrap))


if __name__ == "__main__":
    run_stage(main)
