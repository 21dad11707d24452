"""Run a profile (a YAML of overrides over params.yaml, e.g. configs/course.yaml) as one DVC experiment.

    python scripts/exp_profile.py configs/course.yaml [--name course] [--dry-run] [-- extra dvc exp run args]

The overrides become ``dvc exp run -S key=value`` flags (nested keys dotted, lists and values as YAML), so the
experiment is an ordinary DVC experiment: in ``dvc exp show`` / ``make exps`` beside the others, reproducible from
its params, and your params.yaml is untouched. The merged params are validated first (a bad key fails here, naming
it, not an hour into the run).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from demo import deep_merge  # noqa: E402
from summarizer.config import parse_params  # noqa: E402
from which_profile import flat_keys  # noqa: E402


def flatten(overrides: dict) -> list[str]:
    """``{"ppo": {"lr": 1e-5}, "lr": 2}`` → ``["ppo.lr=1e-05", "lr=2"]``; values in YAML flow style."""
    def text(value) -> str:
        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()

    return [f"{key}={text(value)}" for key, value in flat_keys(overrides).items()]


def command(profile: Path, name: str, params: Path = ROOT / "params.yaml") -> list[str]:
    overrides = yaml.safe_load(profile.read_text()) or {}
    parse_params(deep_merge(yaml.safe_load(params.read_text()), overrides))  # fails naming the key
    flags = [arg for pair in flatten(overrides) for arg in ("-S", pair)]
    return [sys.executable, "-m", "dvc", "exp", "run", "--name", name, *flags]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profile", type=Path)
    p.add_argument("--name", help="the experiment's name (default: the profile's file name)")
    p.add_argument("--dry-run", action="store_true", help="print the command only")
    p.add_argument("extra", nargs="*", help="more `dvc exp run` arguments, after --")
    args = p.parse_args(argv)
    cmd = command(args.profile, args.name or args.profile.stem) + args.extra
    print(" ".join(cmd[2:]), flush=True)
    return 0 if args.dry_run else subprocess.call(cmd, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
