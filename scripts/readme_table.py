"""Copy the results table the report stage wrote (metrics/README.md, between its markers) into README.md and
docs/results.md, and the seeds tables scripts/seeds.py makes from metrics/seeds.json (the summary into both, each
seed's row into docs/results.md) and PPO's four-run ablation from metrics/ppo_ablation.json (into docs/results.md),
so that the figures a reader sees first are the committed metrics' (`make
readme`).

    python scripts/readme_table.py            # after `dvc repro` (or the committed-results regeneration)
    python scripts/readme_table.py --check    # exit 1, naming the file, when a copy differs (CI's drift test)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import json

import seeds
from summarizer.report import TABLE_BEGIN, TABLE_END, ablation_markdown

ROOT = Path(__file__).resolve().parents[1]
COPIES = ("README.md", "docs/results.md")
ABLATION_BEGIN = "<!-- ppo-ablation: generated from metrics/ppo_ablation.json; `make readme` copies it -->"
ABLATION_END = "<!-- end of ppo-ablation -->"
PPO_SEEDS_BEGIN = ("<!-- ppo-seeds: generated from metrics/ppo_seeds/ and metrics/ppo_ablation.json; "
                   "`make readme` copies it -->")
PPO_SEEDS_END = "<!-- end of ppo-seeds -->"


def splice(text: str, block: str, begin: str, end: str, name: str) -> str:
    """``text`` with the block between ``begin`` and ``end`` (markers included) replaced by ``block``."""
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"{name}: no {begin[5:begin.index(':')]} markers")
    return text[:start] + block + text[stop + len(end):]


def blocks(root: Path) -> dict[str, list[tuple[str, str, str]]]:
    """Per copy, the generated blocks it carries: (block, begin marker, end marker)."""
    results = (generated_table(root), TABLE_BEGIN, TABLE_END)
    out = {name: [results] for name in COPIES}
    if (root / "metrics/seeds.json").exists():
        data = json.loads((root / "metrics/seeds.json").read_text(encoding="utf-8"))
        summary = (seeds.summary_of(data), seeds.SUMMARY_BEGIN, seeds.SUMMARY_END)
        rows = (seeds.rows_table(data["seeds"]), seeds.ROWS_BEGIN, seeds.ROWS_END)
        out["README.md"].append(summary)
        out["docs/results.md"] += [summary, rows]
    if (root / "metrics/ppo_ablation.json").exists():
        ablation = json.loads((root / "metrics/ppo_ablation.json").read_text(encoding="utf-8"))
        table = [l for l in ablation_markdown(ablation) if l.startswith("|")]
        out["docs/results.md"].append(("\n".join([ABLATION_BEGIN, *table, ABLATION_END]), ABLATION_BEGIN,
                                       ABLATION_END))
        seeds_runs = ppo_seed_runs(root, ablation)
        if len(seeds_runs) > 1:
            table = [l.replace("| run |", "| seed |", 1) for l in ablation_markdown({"runs": seeds_runs})
                     if l.startswith("|")]
            out["docs/results.md"].append(("\n".join([PPO_SEEDS_BEGIN, *table, PPO_SEEDS_END]), PPO_SEEDS_BEGIN,
                                           PPO_SEEDS_END))
    return out


def ppo_seed_runs(root: Path, ablation: dict) -> dict[str, dict]:
    """The stage's PPO setting on each seed: the committed run's (the ablation's `both`) and each
    metrics/ppo_seeds/seed-N.json (scripts/ppo_ablation.py --runs both on that seed's models)."""
    runs = {str(ablation.get("seed", "committed")): ablation["runs"]["both"]} if "both" in ablation["runs"] else {}
    for path in sorted((root / "metrics/ppo_seeds").glob("seed-*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if "both" in data.get("runs", {}):
            runs[str(data.get("seed", path.stem))] = data["runs"]["both"]
    return runs


def generated_table(root: Path) -> str:
    text = (root / "metrics/README.md").read_text(encoding="utf-8")
    start, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if start < 0 or end < start:
        raise SystemExit("metrics/README.md has no results table: run the report stage (dvc repro report)")
    return text[start:end + len(TABLE_END)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only say whether the copies match; change nothing")
    p.add_argument("--root", default=str(ROOT), help=argparse.SUPPRESS)  # the tests' stand-in project
    args = p.parse_args(argv)
    root = Path(args.root)
    stale = []
    for name, generated in blocks(root).items():
        path = root / name
        text = path.read_text(encoding="utf-8")
        updated = text
        for block, begin, end in generated:
            updated = splice(updated, block, begin, end, name)
        if updated != text:
            stale.append(name)
            if not args.check:
                path.write_text(updated, encoding="utf-8")
    if args.check and stale:
        print(f"{', '.join(stale)}: a generated table differs from the metrics'; run `make readme`",
              file=sys.stderr)
        return 1
    print(("updated: " + ", ".join(stale)) if stale else "the results tables match metrics/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
