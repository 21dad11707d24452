"""Run the whole pipeline in a separate workspace: the demo (tiny random models) or the learning profile.

The script copies the project's files to a workspace (``.demo/`` or ``.laptop/``: git-ignored, dvc-ignored),
applies a profile's overrides to the copy's params.yaml and runs ``dvc repro`` there, so the user's params.yaml,
dvc.lock and DVC cache are left exactly as they were. Run again, it resumes: the workspace keeps its outputs, cache
and checkpoints, takes the project's current files, and DVC reruns only what changed or did not finish
(``--fresh`` starts over). Without git (a ZIP download, a bare GPU image) the files to copy are found by walking the
tree with the project's .gitignore files.

- ``demo`` (``demo/params-overrides.yaml``): tiny random models, minutes; every score is meaningless.
- ``laptop`` (``configs/laptop.yaml``): a small T5 pretrained here on the train dialogues, then fine-tuned with
  settings that make each method learn at that scale, on the real DialogSum (``--data``): about half an hour on 2 CPU
  cores, and scores that mean something (for that small model, not for FLAN-T5).

    python scripts/demo.py                                   # demo, shipped sample data
    python scripts/demo.py --data ../shared/data/dialogsum   # demo, real text (cut by demo/real-data-overrides.yaml)
    python scripts/demo.py --profile laptop --data ../shared/data/dialogsum   # the learning profile
    python scripts/demo.py --profile laptop       # the learning profile, DialogSum from the Hub (data.source)
"""

from __future__ import annotations

import argparse
import fnmatch
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


def _ignored(rel: str, name: str, is_dir: bool, patterns: list[tuple[str, bool, bool]]) -> bool:
    """Whether a .gitignore's patterns (pattern, anchored, directories only) match ``rel`` (relative to that
    .gitignore's folder): the subset of git's rules this project's ignore files use (no negation, no ``**``)."""
    for pattern, anchored, dirs_only in patterns:
        if (is_dir or not dirs_only) and fnmatch.fnmatchcase(rel if anchored else name, pattern):
            return True
    return False


def _read_ignore(path: Path) -> list[tuple[str, bool, bool]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else ():
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        dirs_only, line = line.endswith("/"), line.rstrip("/")
        out.append((line.lstrip("/"), "/" in line, dirs_only))  # a slash before the end anchors it (git's rule)
    return out


def _ignored_here(folder: Path, name: str, is_dir: bool, rules: list[tuple[Path, list]]) -> bool:
    """Whether ``folder/name`` is ignored by any .gitignore from the root down to ``folder``."""
    return any(_ignored((folder / name).relative_to(base).as_posix(), name, is_dir, patterns)
               for base, patterns in rules)


def walk_files(root: Path) -> list[str]:
    """The files git would list (tracked or new, not ignored) found without git: every .gitignore on the way down
    applies to its folder, as git's do."""
    found = []
    scopes: dict[Path, list[tuple[Path, list]]] = {root: [(root, _read_ignore(root / ".gitignore"))]}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        rules = scopes.pop(here)
        if here != root:
            rules = rules + [(here, _read_ignore(here / ".gitignore"))]

        dirs[:] = sorted(d for d in dirs if d != ".git" and not _ignored_here(here, d, True, rules))
        for d in dirs:
            scopes[here / d] = rules
        found += [(here / f).relative_to(root).as_posix() for f in sorted(files)
                  if f != ".git" and not _ignored_here(here, f, False, rules)]  # .git: a file in a worktree
    return found


def project_files(root: Path) -> list[str]:
    """Tracked and new (not ignored) files of the working tree: what the user would commit."""
    if shutil.which("git") and (root / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                                check=True, capture_output=True, text=True).stdout.splitlines()
    else:
        listed = walk_files(root)
    # Outputs of the project's own run stay behind: the demo produces its own.
    return [f for f in listed if (root / f).is_file() and not f.startswith(("metrics/", "plots/", "dvclive/"))]


def profile_params(params: dict, overrides: list[Path], data: str | None, seed: int | None = None) -> dict:
    for path in overrides:
        params = deep_merge(params, yaml.safe_load(path.read_text()))
    if data:
        params["data"]["source"] = data
    if seed is not None:
        params["seed"] = seed
    return params


def workspace_env(work: Path, offline: bool = True, base: dict | None = None) -> dict[str, str]:
    """The environment a workspace's `dvc repro` runs in: its own copy of the library first on the import path
    (the project's editable install would otherwise run the project's src/, whatever has changed there since the
    copy, while dvc.lock records the copy's hashes), and offline unless the data must come from the Hub."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join([str(work / "src"), *filter(None, [env.get("PYTHONPATH")])])
    if offline:
        env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return env


MANIFEST = ".workspace-files"  # the project files copied in, one per line: what a resumed workspace replaces


def make_workspace(root: Path, work: Path, overrides: list[Path], data: str | None, seed: int | None = None,
                   fresh: bool = True) -> bool:
    """Copy the project into ``work`` with the profile's params; return whether an earlier run's workspace was
    resumed. ``fresh`` deletes it first; otherwise its outputs, DVC cache, checkpoints and dvc.lock stay, its
    project files are replaced by the project's current ones (those the project no longer has are removed), and
    ``dvc repro`` reruns only what changed or did not finish."""
    resumed = not fresh and (work / MANIFEST).is_file()
    if work.exists() and not resumed:
        shutil.rmtree(work)
    files = project_files(root)
    if resumed:
        for rel in set((work / MANIFEST).read_text().splitlines()) - set(files):
            (work / rel).unlink(missing_ok=True)
    for rel in files:
        if resumed and rel == "dvc.lock":
            continue  # the workspace's own lock: what its run has done
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest)
    if not resumed:
        (work / "dvc.lock").unlink(missing_ok=True)  # the demo's own run starts from nothing
    (work / MANIFEST).write_text("\n".join(files) + "\n")
    params = profile_params(yaml.safe_load((work / "params.yaml").read_text()), overrides,
                            str(Path(data).resolve()) if data else None, seed)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    if shutil.which("git") is None:  # a machine without git (a lent GPU machine may have none): DVC without SCM
        (work / ".dvc" / "config.local").write_text("[core]\n    no_scm = true\n")
        return resumed
    # DVC needs an SCM root, and dvclive a commit to hang its run on: a local commit of the copied files.
    git = ["git", "-c", "user.name=demo", "-c", "user.email=demo@localhost", "-c", "commit.gpgsign=false"]
    if not (work / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    subprocess.run([*git, "add", "-A"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-qm", "demo workspace", "--allow-empty"], cwd=work, check=True)
    return resumed


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
    p.add_argument("--fresh", action="store_true",
                   help="start over: delete the workspace (its outputs, cache and checkpoints) instead of resuming")
    args = p.parse_args(argv)
    files, folder, banner = PROFILES[args.profile]
    work = Path(args.workspace or ROOT / folder).resolve()
    overrides = [ROOT / f for f in files]
    if args.data and not Path(args.data).is_dir():
        sys.exit(f"--data {args.data}: no such folder")
    if args.profile == "demo" and args.data:
        overrides.append(ROOT / "demo/real-data-overrides.yaml")
    from_hub = args.profile == "laptop" and not args.data
    if args.write_params:
        params = profile_params(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides, args.data, args.seed)
        Path(args.write_params).write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
        return 0
    print(banner, flush=True)
    if from_hub:  # the learning profile needs the real DialogSum; without a local copy, params.yaml's Hub id
        source = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["source"]
        print(f"No --data: DialogSum comes from data.source ({source}), downloaded once into the Hugging Face "
              "cache; --data FOLDER uses a local copy instead.", flush=True)
    resumed = make_workspace(ROOT, work, overrides, args.data, args.seed, fresh=args.fresh)
    if resumed:
        print(f"Resuming in {work}: what finished is kept, what changed or did not finish runs (--fresh starts "
              "over).", flush=True)
    env = workspace_env(work, offline=not from_hub)  # every model of both profiles is built here
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
