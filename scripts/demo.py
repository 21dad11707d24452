"""Run the whole pipeline offline in a separate workspace: the demo (tiny random models) or the learning profile.

The script copies the project's files to a workspace (``.demo/`` or ``.laptop/``: git-ignored, dvc-ignored),
applies a profile's overrides to the copy's params.yaml and runs ``dvc repro`` there, so the user's params.yaml,
dvc.lock and DVC cache are left exactly as they were.

- ``demo`` (``demo/params-overrides.yaml``): tiny random models, minutes; every score is meaningless.
- ``laptop`` (``configs/laptop.yaml``): a small T5 pretrained here on the train dialogues, then fine-tuned with
  settings that make each method learn at that scale, on the real DialogSum (``--data``): about half an hour on 2 CPU
  cores, and scores that mean something (for that small model, not for FLAN-T5).

    python scripts/demo.py                                   # demo, shipped sample data
    python scripts/demo.py --data ../shared/data/dialogsum   # demo, real text (cut by demo/real-data-overrides.yaml)
    python scripts/demo.py --profile laptop --data ../shared/data/dialogsum   # the learning profile
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
LAPTOP_BANNER = ("LEARNING PROFILE: a small T5 pretrained and fine-tuned here on a CPU. Its scores are real for that "
                 "model; FLAN-T5 itself needs the Hub.")
PROFILES = {
    # profile: (overrides applied in order, the workspace's folder name, banner)
    "demo": (["demo/params-overrides.yaml"], ".demo", BANNER),
    "laptop": (["configs/laptop.yaml"], ".laptop", LAPTOP_BANNER),
}


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


def profile_params(params: dict, overrides: list[Path], data: str | None, seed: int | None = None) -> dict:
    for path in overrides:
        params = deep_merge(params, yaml.safe_load(path.read_text()))
    if data:
        params["data"]["source"] = data
    if seed is not None:
        params["seed"] = seed
    return params


def make_workspace(root: Path, work: Path, overrides: list[Path], data: str | None, seed: int | None = None) -> None:
    if work.exists():
        shutil.rmtree(work)
    for rel in project_files(root):
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest)
    (work / "dvc.lock").unlink(missing_ok=True)  # the demo's own run starts from nothing
    params = profile_params(yaml.safe_load((work / "params.yaml").read_text()), overrides,
                            str(Path(data).resolve()) if data else None, seed)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    if shutil.which("git") is None:  # a machine without git (a lent GPU machine may have none): DVC without SCM
        (work / ".dvc" / "config.local").write_text("[core]\n    no_scm = true\n")
        return
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
    p.add_argument("--profile", choices=PROFILES, default="demo",
                   help="demo: tiny random models (default); laptop: the learning profile (needs --data)")
    p.add_argument("--data", help="a DialogSum-layout folder to use instead of the shipped sample")
    p.add_argument("--workspace", help="where it runs (default: .demo/ or .laptop/)")
    p.add_argument("--write-params", metavar="PATH",
                   help="only write the profile's params (params.yaml + overrides, --data as given) to PATH: how the "
                        "committed results are regenerated in the project itself (docs/results.md)")
    p.add_argument("--seed", type=int, help="the params' seed instead of the profile's (scripts/seeds.py)")
    args = p.parse_args(argv)
    files, folder, banner = PROFILES[args.profile]
    work = Path(args.workspace or ROOT / folder).resolve()
    overrides = [ROOT / f for f in files]
    if args.data and not Path(args.data).is_dir():
        sys.exit(f"--data {args.data}: no such folder")
    if args.profile == "demo" and args.data:
        overrides.append(ROOT / "demo/real-data-overrides.yaml")
    if args.profile == "laptop" and not args.data:
        sys.exit("--profile laptop learns from the real DialogSum: pass --data (e.g. ../shared/data/dialogsum); "
                 "the shipped sample's 42 dialogues are too few to learn from")
    if args.write_params:
        params = profile_params(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides, args.data, args.seed)
        Path(args.write_params).write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
        return 0
    print(banner, flush=True)
    make_workspace(ROOT, work, overrides, args.data, args.seed)
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    repro = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=work, env=env)
    if repro.returncode:
        print(f"\n{args.profile}: `dvc repro` in {work} failed (exit {repro.returncode}); its message is above.",
              file=sys.stderr)
        return 1
    print("\n" + banner)
    print("\n".join(summary_lines(work)))
    print(f"\nOutputs are in {work} (data/, models/, metrics/, plots/; the table: metrics/README.md). {banner}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
