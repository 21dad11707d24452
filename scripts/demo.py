"""Run the whole pipeline offline on tiny random models, in a separate workspace.

The demo copies the project's files to ``.demo/`` (git-ignored, dvc-ignored), applies
``demo/params-overrides.yaml`` to the copy's params.yaml and runs ``dvc repro`` there, so the user's params.yaml,
dvc.lock and DVC cache are left exactly as they were. The models have random weights: every score is meaningless.

    python scripts/demo.py                                   # shipped sample data
    python scripts/demo.py --data ../shared/data/dialogsum   # real text (cut by demo/real-data-overrides.yaml)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BANNER = "DEMO RUN: tiny RANDOM models, so every score below is MEANINGLESS (it only shows the pipeline works)."


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def project_files(root: Path) -> list[str]:
    """Tracked and new (not ignored) files of the working tree: what the user would commit."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                         check=True, capture_output=True, text=True).stdout
    # Outputs of the project's own run stay behind: the demo produces its own.
    return [f for f in out.splitlines()
            if (root / f).is_file() and not f.startswith(("metrics/", "plots/", "dvclive/"))]


def make_workspace(root: Path, work: Path, overrides: list[Path], data: str | None) -> None:
    if work.exists():
        shutil.rmtree(work)
    for rel in project_files(root):
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest)
    (work / "dvc.lock").unlink(missing_ok=True)  # the demo's own run starts from nothing
    params = yaml.safe_load((work / "params.yaml").read_text())
    for path in overrides:
        params = deep_merge(params, yaml.safe_load(path.read_text()))
    if data:
        params["data"]["source"] = str(Path(data).resolve())
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    # DVC needs an SCM root, and dvclive a commit to hang its run on: one local commit of the copied files.
    git = ["git", "-c", "user.name=demo", "-c", "user.email=demo@localhost", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    subprocess.run([*git, "add", "-A"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-qm", "demo workspace"], cwd=work, check=True)


def summary_lines(work: Path) -> list[str]:
    """A short table of what the demo produced (the metrics/ JSON files hold everything)."""
    lines = []
    data = work / "metrics/data.json"
    if data.exists():
        rows = json.loads(data.read_text())["rows"]
        lines.append("data: " + ", ".join(f"{k} {v} rows" for k, v in rows.items()))
    baseline = work / "metrics/baseline.json"
    if baseline.exists():
        lines.append("baseline, greedy, per_reference ROUGE-1 by prompting strategy:")
        for strategy, block in json.loads(baseline.read_text()).items():
            if "greedy" in block:
                lines.append(f"  {strategy:<16} {block['greedy']['per_reference']['rouge1']['mean']:.4f}")
    evals = sorted((work / "metrics/eval").glob("*.json")) if (work / "metrics/eval").is_dir() else []
    if evals:
        lines.append(f"{'variant':<16} {'ROUGE-1':>8} {'ROUGE-L':>8} {'BLEU':>6} {'toxicity':>9}")
    for path in evals:
        m = json.loads(path.read_text())
        if "per_reference" in m:
            r = m["per_reference"]
            lines.append(f"{path.stem:<16} {r['rouge1']['mean']:>8.4f} {r['rougeL']['mean']:>8.4f} "
                         f"{m['bleu']:>6.2f} {m['toxicity']['mean']['mean']:>9.4f}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a DialogSum-layout folder to use instead of the shipped sample")
    p.add_argument("--workspace", default=str(ROOT / ".demo"), help="where the demo runs (default: .demo/)")
    args = p.parse_args(argv)
    work = Path(args.workspace).resolve()
    overrides = [ROOT / "demo/params-overrides.yaml"]
    if args.data:
        if not Path(args.data).is_dir():
            sys.exit(f"--data {args.data}: no such folder")
        overrides.append(ROOT / "demo/real-data-overrides.yaml")
    print(BANNER, flush=True)
    make_workspace(ROOT, work, overrides, args.data)
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    repro = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=work, env=env)
    if repro.returncode:
        print(f"\ndemo: `dvc repro` in {work} failed (exit {repro.returncode}); its message is above.", file=sys.stderr)
        return 1
    print("\n" + BANNER)
    print("\n".join(summary_lines(work)))
    print(f"\nOutputs are in {work} (data/, models/, metrics/, plots/). {BANNER}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
