"""Copy the results table the report stage wrote (metrics/README.md, between its markers) into README.md and
docs/results.md, so that the figures a reader sees first are the committed metrics' (`make readme`).

    python scripts/readme_table.py            # after `dvc repro` (or the committed-results regeneration)
    python scripts/readme_table.py --check    # exit 1, naming the file, when a copy differs (CI's drift test)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from summarizer.report import TABLE_BEGIN, TABLE_END, splice_table

ROOT = Path(__file__).resolve().parents[1]
COPIES = ("README.md", "docs/results.md")


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
    table = generated_table(root)
    stale = []
    for name in COPIES:
        path = root / name
        text = path.read_text(encoding="utf-8")
        updated = splice_table(text, table)
        if updated != text:
            stale.append(name)
            if not args.check:
                path.write_text(updated, encoding="utf-8")
    if args.check and stale:
        print(f"{', '.join(stale)}: the results table differs from metrics/README.md's; run `make readme`",
              file=sys.stderr)
        return 1
    print(("updated: " + ", ".join(stale)) if stale else "the results tables match metrics/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
