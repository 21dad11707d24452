"""Stage compare: every variant against the base model, and toxicity before/after PPO, on the same dialogues.

Both read the per-dialogue scores and toxicity that the evaluate stages wrote, so nothing is generated twice and
every system is judged on identical dialogues with identical generation settings.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from summarizer.config import load_config
from summarizer.evaluation import scores_from_records
from summarizer.io import read_jsonl, write_json
from summarizer.scoring import ROUGE_KEYS, bootstrap_ci, compare_systems, paired_bootstrap
from summarizer.stage import parser, run_stage

log = logging.getLogger("summarizer.compare")


def toxicity_before_after(before: list[dict], after: list[dict], *, names: tuple[str, str], min_dialogues: int,
                          resamples: int, confidence: float, seed: int) -> dict:
    """Toxicity (mean with CI, std) and ROUGE of two systems, and their paired differences (after − before)."""
    if [r["dialogue_id"] for r in before] != [r["dialogue_id"] for r in after]:
        raise ValueError("before and after must be scored on the same dialogues")
    ci = dict(resamples=resamples, confidence=confidence, seed=seed)
    out: dict = {"n_dialogues": len(before), "enough_dialogues": len(before) >= min_dialogues}
    if not out["enough_dialogues"]:
        log.warning("toxicity compared on %d dialogues, fewer than ppo.min_eval_dialogues=%d", len(before),
                    min_dialogues)
    tox = {}
    for section, name, records in (("before", names[0], before), ("after", names[1], after)):
        tox[section] = np.array([r["toxicity"] for r in records])
        scores = scores_from_records(records)
        out[section] = {
            "variant": name,
            "toxicity": {"mean": _round(bootstrap_ci(tox[section], **ci)), "std": round(float(tox[section].std()), 6)},
            "rouge": {k: _round(bootstrap_ci(scores.per_reference[k], weights=scores.rows, **ci)) for k in ROUGE_KEYS},
        }
    b, a = scores_from_records(before), scores_from_records(after)
    out["difference"] = {
        "toxicity": _round(paired_bootstrap(tox["after"], tox["before"], **ci)),
        "rouge": {k: _round(paired_bootstrap(a.per_reference[k], b.per_reference[k], weights=b.rows, **ci))
                  for k in ROUGE_KEYS},
    }
    return out


def _round(d: dict) -> dict:
    return {k: round(v, 6) for k, v in d.items()}


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--reference", default="base", help="variant every other one is compared with")
    p.add_argument("--predictions", nargs="+", required=True, help="data/predictions/<variant>.jsonl files")
    p.add_argument("--metrics", required=True)
    p.add_argument("--detox", nargs=2, metavar=("BEFORE", "AFTER"), help="variants for toxicity before/after")
    p.add_argument("--detox-metrics", help="where the before/after comparison goes (metrics/ppo.json)")
    args = p.parse_args(argv)
    cfg = load_config(args.params)
    records = {Path(f).stem: read_jsonl(f) for f in args.predictions}
    if args.reference not in records:
        raise SystemExit(f"--reference {args.reference}: not among {', '.join(records)}")
    sc = cfg.scoring
    ci = dict(resamples=sc.bootstrap_resamples, confidence=sc.confidence, seed=cfg.seed)
    reference = scores_from_records(records[args.reference])
    out = {"reference": args.reference}
    for name, rows in records.items():
        if name != args.reference:
            out[name] = compare_systems(scores_from_records(rows), reference, **ci)
    write_json(args.metrics, out)
    if args.detox:
        before, after = args.detox
        write_json(args.detox_metrics, toxicity_before_after(
            records[before], records[after], names=(before, after), min_dialogues=cfg.ppo.min_eval_dialogues, **ci))


if __name__ == "__main__":
    run_stage(main)
