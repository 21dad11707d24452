"""Which profile produced the committed results (issue 36, item 4): `make exps` says so above HEAD's row."""

import subprocess
import sys

import yaml

from helpers import ROOT
from demo import deep_merge
from which_profile import candidates, differences, locked_params


def _lock(params: dict) -> dict:
    return {"stages": {"train": {"params": {"params.yaml": {"lr": params["lr"], "ppo": params["ppo"]}}},
                       "data": {"params": {"params.yaml": {"data": params["data"], "seed": 7}}}}}


def test_a_lock_is_matched_to_the_profile_it_ran_with():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    laptop = deep_merge(params, yaml.safe_load((ROOT / "configs/laptop.yaml").read_text()))
    laptop["data"]["source"] = "/somewhere/dialogsum"  # a local copy and another seed: not a different profile
    locked = locked_params(_lock(laptop))
    found = [name for name, p in candidates().items() if not differences(locked, p)]
    assert found == ["the laptop profile (configs/laptop.yaml)"]
    assert "lr" in differences(locked, params) and "ppo.lr" in differences(locked, params)


def test_the_committed_results_are_named_as_the_learning_profiles():
    out = subprocess.run([sys.executable, str(ROOT / "scripts/which_profile.py")], capture_output=True, text=True,
                         check=True).stderr
    assert "come from the laptop profile (configs/laptop.yaml)" in out and "dvc params diff" in out
