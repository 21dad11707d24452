"""Which profile produced the committed results: dvc.lock's params compared with params.yaml and each profile.

    python scripts/which_profile.py [--lock dvc.lock]

The committed dvc.lock, metrics/ and plots/ may come from a profile (the learning profile: configs/laptop.yaml)
while params.yaml holds the defaults, so HEAD's row in `dvc exp show` / `make exps` shows params.yaml's values
beside the profile's metrics. This names the profile whose params every locked stage ran with (data.source and
seed aside: a profile runs on a local copy and any seed), and the keys where params.yaml differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from demo import PROFILES, profile_params  # noqa: E402

IGNORED = {"data.source", "seed"}


def flat_keys(tree: dict, prefix: str = "") -> dict:
    """{"ppo": {"lr": 1}} -> {"ppo.lr": 1}: params keys as dvc.lock and `dvc exp run -S` spell them."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= flat_keys(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def locked_params(lock: dict) -> dict:
    """Every params.yaml key a locked stage ran with, flattened (``ppo.lr``)."""
    out: dict = {}
    for stage in lock.get("stages", {}).values():
        out |= flat_keys(stage.get("params", {}).get("params.yaml", {}))
    return out


def _same(a, b) -> bool:
    """Equal values; numbers compared as numbers (DVC writes 1.0e-5 as 1e-05, which YAML 1.1 reads as a string)."""
    if a == b:
        return True
    try:
        return not isinstance(a, (bool, list, dict)) and float(a) == float(b)
    except (TypeError, ValueError):
        return False


def differences(locked: dict, params: dict) -> list[str]:
    flat = flat_keys(params)
    return sorted(k for k, v in locked.items() if k not in IGNORED and not _same(flat.get(k, v), v))


def candidates(root: Path = ROOT) -> dict[str, dict]:
    params = yaml.safe_load((root / "params.yaml").read_text())
    out = {"params.yaml (the defaults)": params}
    for name, (files, _, _) in PROFILES.items():
        out[f"the {name} profile ({', '.join(files)})"] = profile_params(
            yaml.safe_load((root / "params.yaml").read_text()), [root / f for f in files], None)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lock", default=str(ROOT / "dvc.lock"))
    args = p.parse_args(argv)
    locked = locked_params(yaml.safe_load(Path(args.lock).read_text()))
    found = [name for name, params in candidates().items() if not differences(locked, params)]
    print(f"{args.lock}: the committed results come from {found[0] if found else 'no known profile'}"
          + (f"; params.yaml differs in {len(differences(locked, candidates()['params.yaml (the defaults)']))} "
             "keys (`dvc params diff` lists them)" if found and not found[0].startswith("params.yaml") else ""),
          file=sys.stderr)  # stderr: `make exps ARGS=--csv > file` stays a CSV
    return 0


if __name__ == "__main__":
    sys.exit(main())
