"""Stage prepare_data: load DialogSum (Hub or local folder), validate, cut by params, write normalised splits."""

from __future__ import annotations

import hashlib
from pathlib import Path

from summarizer.config import load_params
from summarizer.data import SPLITS, data_stats, prepare_splits
from summarizer.hub import recorded
from summarizer.io import write_json, write_jsonl
from summarizer.stage import parser, run_stage


def source_files(source: str) -> dict[str, str]:
    """sha256 of each file of a local source, so metrics/data.json says exactly which data was read."""
    folder = Path(source)
    if not folder.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.suffix in (".jsonl", ".csv")}


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--out", required=True, help="folder for train/validation/test.jsonl")
    p.add_argument("--metrics", required=True)
    p.add_argument("--hub", help="the commit stage hub_revisions resolved (default: the params' revision as is)")
    args = p.parse_args(argv)
    cfg = load_params(args.params)
    d = cfg.data
    hub = recorded(args.hub, d.source, d.revision)
    splits = prepare_splits(d.source, hub.load_revision(), cfg.seed, d.max_train_samples, d.max_validation_samples,
                            d.max_test_dialogues)
    for split in SPLITS:
        write_jsonl(Path(args.out) / f"{split}.jsonl", splits[split])
    stats = {"source": d.source, "revision": hub.revision, "commit": hub.commit,
             "source_sha256": source_files(d.source)} | data_stats(splits)
    write_json(args.metrics, stats)


if __name__ == "__main__":
    run_stage(main)
