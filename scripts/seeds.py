"""The learning profile over several seeds: does its lesson hold, or was it one lucky seed?

Each seed runs the whole profile (``make laptop``, i.e. scripts/demo.py --profile laptop) in a workspace of its own,
``.seeds/seed-N/``, with the params' ``seed`` set to N: model initialisation, pretraining and fine-tuning order,
sampling and bootstrap resampling all change with it. Then one table per method over the seeds: the mean and the
range (min to max) of ROUGE-1, ROUGE-L, the share of distinct summaries and the paired ROUGE-L difference to Lead-3,
with each seed's own row (its CI to Lead-3, its base's copy gain, its minutes).

    python scripts/seeds.py --data ../shared/data/dialogsum --seeds 42 7 1            # about an hour a seed
    python scripts/seeds.py --data ../shared/data/dialogsum --seeds 42 7 --jobs 2     # two at once, a thread each
    python scripts/seeds.py --seeds 42 7 1 --table-only                              # the table of runs done
    python scripts/seeds.py --data ../shared/data/dialogsum --seeds 7 1 --committed 42 --committed-minutes 31
        # seed 42's row from the committed run (the project's own metrics/, regenerated with the profile)

Writes ``seeds.json`` and ``seeds.md`` to ``--out`` (default: ``--root``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("base", "full", "lora", "prompt_tuning", "ppo")


def run_seed(seed: int, data: str, root: Path, threads: int) -> float:
    """One whole profile run; its log in ``root/seed-N.log``. Returns its minutes."""
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with (root / f"seed-{seed}.log").open("w") as log:
        done = subprocess.run([sys.executable, str(ROOT / "scripts/demo.py"), "--profile", "laptop", "--data", data,
                               "--workspace", str(root / f"seed-{seed}"), "--seed", str(seed)],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    minutes = (time.perf_counter() - start) / 60
    (root / f"seed-{seed}" / "minutes.txt").write_text(f"{minutes:.1f}\n")
    if done.returncode:
        raise SystemExit(f"seed {seed}: the profile failed (exit {done.returncode}); see {root / f'seed-{seed}.log'}")
    return minutes


def committed_seed(root: Path) -> int:
    """The seed the project's committed run used (every stage of its dvc.lock records the same one)."""
    import yaml

    lock = yaml.safe_load((root / "dvc.lock").read_text())
    seeds = {p["seed"] for stage in lock["stages"].values() for p in stage.get("params", {}).values() if "seed" in p}
    if len(seeds) != 1:
        raise SystemExit(f"{root / 'dvc.lock'}: no single seed recorded ({sorted(seeds)})")
    return seeds.pop()


def seed_row(work: Path, minutes: float | None = None) -> dict:
    """What one run's metrics say, per method."""
    m = work / "metrics"
    evals = {v: json.loads((m / f"eval/{v}.json").read_text()) for v in METHODS}
    lead = json.loads((m / "eval/comparison.json").read_text())["vs_lead"]
    base = json.loads((m / "models/base.json").read_text())
    timed = work / "minutes.txt"
    if minutes is None and timed.exists():
        minutes = float(timed.read_text())
    row = {"copy_gain": base.get("copy", {}).get("copy_gain"), "minutes": minutes}
    for v, e in evals.items():
        d = lead[v]["per_reference"]["rougeL"]
        row[v] = {"rouge1": e["per_reference"]["rouge1"]["mean"], "rougeL": e["per_reference"]["rougeL"]["mean"],
                  "distinct_share": e["distinct_share"], "rougeL_vs_lead": d["difference"],
                  "rougeL_vs_lead_ci": [d["ci_low"], d["ci_high"]]}
    return row


def summarize(rows: dict[int, dict]) -> dict:
    """Per method and figure: the mean, min and max over the seeds."""
    out = {}
    for v in METHODS:
        out[v] = {}
        for key in ("rouge1", "rougeL", "distinct_share", "rougeL_vs_lead"):
            values = [r[v][key] for r in rows.values()]
            out[v][key] = {"mean": round(statistics.fmean(values), 4), "min": min(values), "max": max(values)}
    return out


def markdown(rows: dict[int, dict], summary: dict, committed: int | None = None) -> str:
    seeds = ", ".join(map(str, rows))
    source = f" Seed {committed}'s row is the committed run." if committed is not None else ""
    lines = [f"Learning profile over seeds {seeds} (`python scripts/seeds.py`): mean [min, max] over the seeds; "
             f"test split, 500 dialogues, `per_reference`.{source}", "",
             "| method | ROUGE-1 | ROUGE-L | distinct | ROUGE-L − Lead-3 |", "|---|---|---|---|---|"]

    def cell(s: dict, fmt: str) -> str:
        return f"{s['mean']:{fmt}} [{s['min']:{fmt}}, {s['max']:{fmt}}]"

    for v in METHODS:
        s = summary[v]
        lines.append(f"| {v} | {cell(s['rouge1'], '.4f')} | {cell(s['rougeL'], '.4f')} | "
                     f"{cell(s['distinct_share'], '.1%')} | {cell(s['rougeL_vs_lead'], '+.4f')} |")
    lines += ["", "| seed | base copy gain | minutes | " + " | ".join(
        f"{v} R1 / RL, distinct, RL − Lead-3 [95% CI]" for v in ("full", "lora")) + " |", "|---|---|---|---|---|"]
    for seed, r in rows.items():
        cells = []
        for v in ("full", "lora"):
            x = r[v]
            lo, hi = x["rougeL_vs_lead_ci"]
            cells.append(f"{x['rouge1']:.4f} / {x['rougeL']:.4f}, {x['distinct_share']:.1%}, "
                         f"{x['rougeL_vs_lead']:+.4f} [{lo:+.4f}, {hi:+.4f}]")
        gain = "–" if r["copy_gain"] is None else f"{r['copy_gain']:.3f}"
        minutes = "–" if r["minutes"] is None else f"{r['minutes']:.0f}"
        lines.append(f"| {seed} | {gain} | {minutes} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 1])
    p.add_argument("--data", help="a DialogSum-layout folder (needed unless --table-only)")
    p.add_argument("--root", default=str(ROOT / ".seeds"), help="where the workspaces go (default: .seeds/)")
    p.add_argument("--jobs", type=int, default=1, help="seeds run at once; the cores are split between them")
    p.add_argument("--table-only", action="store_true", help="only aggregate the workspaces already run")
    p.add_argument("--out", help="folder for seeds.json and seeds.md (default: --root)")
    p.add_argument("--committed", type=int, metavar="SEED",
                   help="take this seed's row from the project's committed run (its metrics/; dvc.lock must record "
                        "this seed) instead of running it")
    p.add_argument("--committed-minutes", type=float, help="how long the committed run took (its row's minutes)")
    p.add_argument("--project", default=str(ROOT), help=argparse.SUPPRESS)  # the tests' stand-in project
    args = p.parse_args(argv)
    root = Path(args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        if not args.data or not Path(args.data).is_dir():
            raise SystemExit("pass --data: a DialogSum-layout folder (e.g. ../shared/data/dialogsum)")
        data = str(Path(args.data).resolve())
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda s: run_seed(s, data, root, threads), args.seeds))
    missing = [s for s in args.seeds if not (root / f"seed-{s}/metrics/eval/comparison.json").exists()]
    if missing:
        raise SystemExit(f"no finished run for seed(s) {missing} under {root}")
    rows = {}
    if args.committed is not None:
        project = Path(args.project)
        if committed_seed(project) != args.committed:
            raise SystemExit(f"--committed {args.committed}: the committed run used seed {committed_seed(project)}")
        rows[args.committed] = seed_row(project, args.committed_minutes)
    rows |= {s: seed_row(root / f"seed-{s}") for s in args.seeds}
    summary = summarize(rows)
    out = Path(args.out or root)
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.json").write_text(json.dumps({"seeds": rows, "summary": summary, "committed": args.committed},
                                               indent=2) + "\n")
    table = markdown(rows, summary, args.committed)
    (out / "seeds.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
