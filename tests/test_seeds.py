"""scripts/seeds.py: the learning profile over several seeds, summarised per method (mean and range)."""

import json
import shutil

import pytest

import seeds
from helpers import ROOT


def _workspace(root, seed, full_rouge_l, copy_gain):
    """A finished seed's workspace: the committed metrics, with full's ROUGE-L and the base's copy gain set."""
    work = root / f"seed-{seed}"
    shutil.copytree(ROOT / "metrics", work / "metrics")
    path = work / "metrics/eval/full.json"
    full = json.loads(path.read_text())
    full["per_reference"]["rougeL"]["mean"] = full_rouge_l
    path.write_text(json.dumps(full))
    base = work / "metrics/models/base.json"
    base.write_text(json.dumps(json.loads(base.read_text()) | {"copy": {"copy_gain": copy_gain}}))
    (work / "minutes.txt").write_text("41.5\n")


def test_seeds_table_gives_each_method_the_mean_and_range_over_the_seeds(tmp_path):
    _workspace(tmp_path, 42, 0.30, 0.86)
    _workspace(tmp_path, 7, 0.20, 0.05)
    assert seeds.main(["--seeds", "42", "7", "--root", str(tmp_path), "--table-only"]) == 0
    out = json.loads((tmp_path / "seeds.json").read_text())
    assert out["summary"]["full"]["rougeL"] == {"mean": 0.25, "min": 0.20, "max": 0.30}
    assert out["seeds"]["7"]["copy_gain"] == 0.05 and out["seeds"]["42"]["minutes"] == 41.5
    lora = json.loads((ROOT / "metrics/eval/lora.json").read_text())["per_reference"]["rougeL"]["mean"]
    assert out["summary"]["lora"]["rougeL"]["min"] == out["summary"]["lora"]["rougeL"]["max"] == lora
    table = (tmp_path / "seeds.md").read_text()
    assert "| full | " in table and "0.2500 [0.2000, 0.3000]" in table
    assert "| 7 | 0.050 | 42 |" in table  # each seed's own row: its base's copy gain and its minutes


def test_seeds_table_refuses_a_seed_that_has_not_run(tmp_path):
    _workspace(tmp_path, 42, 0.30, 0.86)
    with pytest.raises(SystemExit, match=r"no finished run for seed\(s\) \[7\]"):
        seeds.main(["--seeds", "42", "7", "--root", str(tmp_path), "--table-only"])


def test_demo_seed_reaches_the_workspace_params():
    """scripts/seeds.py runs each seed as `demo.py --seed N`: the seed replaces the profile's."""
    import yaml

    from demo import profile_params

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    laptop = [ROOT / "configs/laptop.yaml"]
    assert profile_params(raw, laptop, None, seed=7)["seed"] == 7
    assert profile_params(raw, laptop, None)["seed"] == raw["seed"]


def test_committed_run_stands_for_its_own_seed(tmp_path):
    """--committed takes a seed's row from the project's committed metrics (no workspace), and refuses a seed that
    its dvc.lock does not record."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "metrics", project / "metrics")
    shutil.copy(ROOT / "dvc.lock", project / "dvc.lock")
    _workspace(tmp_path / "runs", 7, 0.20, 0.05)
    args = ["--seeds", "7", "--root", str(tmp_path / "runs"), "--table-only", "--project", str(project)]
    assert seeds.main(args + ["--committed", "42", "--committed-minutes", "31"]) == 0
    out = json.loads((tmp_path / "runs/seeds.json").read_text())
    full = json.loads((ROOT / "metrics/eval/full.json").read_text())["per_reference"]["rougeL"]["mean"]
    assert out["seeds"]["42"]["full"]["rougeL"] == full and out["seeds"]["42"]["minutes"] == 31
    assert out["summary"]["full"]["rougeL"]["min"] == 0.20 and out["committed"] == 42
    assert "Seed 42's row is the committed run." in (tmp_path / "runs/seeds.md").read_text()
    with pytest.raises(SystemExit, match="the committed run used seed 42"):
        seeds.main(args + ["--committed", "7"])
