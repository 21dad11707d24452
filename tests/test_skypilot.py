"""The SkyPilot task (configs/skypilot.yaml, docs/sweeps.md) is one SkyPilot accepts: loaded by SkyPilot's own
`sky.Task.from_yaml`, which validates it against SkyPilot's schema. skypilot pins click and uvicorn below what Gradio
needs, so it lives in its own environment, named by SKYPILOT_PYTHON; CI installs it and sets REQUIRE_SKYPILOT=1 so
that a missing install fails instead of skipping. Its `run` commands are run offline by
tests/test_pipeline.py::test_sweep_worker_round_trip."""

import json
import os
import re
import subprocess

import pytest
import yaml

from helpers import ROOT

TASK = ROOT / "configs/skypilot.yaml"
SKYPILOT_PYTHON = os.environ.get("SKYPILOT_PYTHON")

LOAD = """
import json, sys
import sky
task = sky.Task.from_yaml(sys.argv[1])
print(json.dumps({"name": task.name, "envs": task.envs, "workdir": task.workdir, "setup": task.setup,
                  "run": task.run, "accelerators": [r.accelerators for r in task.resources],
                  "version": sky.__version__}))
"""


def load_with_skypilot(path) -> subprocess.CompletedProcess:
    return subprocess.run([SKYPILOT_PYTHON, "-c", LOAD, str(path)], capture_output=True, text=True, timeout=300,
                          env=os.environ | {"SKYPILOT_DISABLE_USAGE_COLLECTION": "1"})


needs_skypilot = pytest.mark.skipif(not SKYPILOT_PYTHON and not os.environ.get("REQUIRE_SKYPILOT"),
                                    reason="SKYPILOT_PYTHON names no Python with skypilot installed (CI sets it)")


@needs_skypilot
def test_task_file_is_valid_for_skypilot():
    proc = load_with_skypilot(TASK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    task = json.loads(proc.stdout.strip().splitlines()[-1])
    assert task["version"] == "0.14.1"
    assert task["name"] == "dialogsum-exp" and task["workdir"] == "."
    assert set(task["envs"]) >= {"EXP_NAME", "EXP_ARGS", "GIT_REMOTE"}
    assert sorted(map(json.dumps, task["accelerators"])) == ['{"A100-80GB": 1}', '{"H100": 1}', '{"L40S": 1}']
    assert "dvc exp run --pull" in task["run"] and "dvc exp push --run-cache" in task["run"]


@needs_skypilot
@pytest.mark.parametrize("edit, message", [
    (lambda t: t.update(resource=t.pop("resources")), "did you mean 'resources'"),
    (lambda t: t["resources"].update(disk_size="lots"), "disk_size"),
])
def test_skypilot_refuses_a_broken_copy(tmp_path, edit, message):
    """The loader used above does validate: a misspelt key and a bad value are refused."""
    task = yaml.safe_load(TASK.read_text())
    edit(task)
    broken = tmp_path / "task.yaml"
    broken.write_text(yaml.safe_dump(task))
    proc = load_with_skypilot(broken)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]


def test_setup_is_the_readme_set_up():
    """The worker installs the way the README says, so the task cannot drift from what CI tests."""
    readme = (ROOT / "README.md").read_text()
    readme_setup = re.search(r"^(python -m venv .*make setup)\s", readme, re.M).group(1)
    setup = yaml.safe_load(TASK.read_text())["setup"].strip()
    assert setup == readme_setup
