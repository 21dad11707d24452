"""scripts/demo.py's workspaces (`make demo`, `make laptop`, scripts/seeds.py): a rerun resumes instead of starting
from zero, --fresh starts over, and a machine without git still gets the project's files (issue 36)."""

import os
import shutil
import subprocess

import pytest
import yaml

import demo
from helpers import ROOT


def _project(tmp_path):
    """A small git project: params, a dvc.lock of its own, an ignored output folder and a nested .gitignore."""
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump({"seed": 1, "data": {"source": "owner/name"}}))
    (root / "dvc.lock").write_text("schema: '2.0'\n")
    (root / "src/a.py").write_text("A = 1\n")
    (root / "src/b.py").write_text("B = 1\n")
    (root / ".gitignore").write_text("__pycache__/\n/models/\n*.pyc\n")
    (root / "models").mkdir()
    (root / "models/big.bin").write_text("weights")
    (root / "cache").mkdir()
    (root / "cache/.gitignore").write_text("*\n")  # as .ruff_cache has
    (root / "cache/x").write_text("x")
    (root / ".dvc/cache").mkdir(parents=True)
    (root / ".dvc/config").write_text("")
    (root / ".dvc/.gitignore").write_text("/config.local\n/tmp\n/cache\n")
    (root / ".dvc/cache/obj").write_text("")
    (root / "src/__pycache__").mkdir()
    (root / "src/__pycache__/a.cpython.pyc").write_text("")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "p"], cwd=root, check=True)
    return root


def test_a_rerun_resumes_and_takes_the_projects_current_files(tmp_path):
    root, work = _project(tmp_path), tmp_path / "ws"
    assert demo.make_workspace(root, work, [], None, fresh=False) is False  # nothing to resume yet
    assert not (work / "dvc.lock").exists() and (work / "src/a.py").exists() and not (work / "models").exists()
    # the run: outputs, a lock and a checkpoint of its own
    (work / "models").mkdir()
    (work / "models/base.bin").write_text("trained")
    (work / "dvc.lock").write_text("what this workspace ran\n")
    # meanwhile the project changes
    (root / "src/a.py").write_text("A = 2\n")
    (root / "src/b.py").unlink()
    assert demo.make_workspace(root, work, [], None, fresh=False) is True
    assert (work / "models/base.bin").read_text() == "trained"  # kept: DVC skips what finished
    assert (work / "dvc.lock").read_text() == "what this workspace ran\n"  # not the project's lock
    assert (work / "src/a.py").read_text() == "A = 2\n" and not (work / "src/b.py").exists()
    assert demo.make_workspace(root, work, [], None, fresh=True) is False  # --fresh: from nothing
    assert not (work / "models").exists() and not (work / "dvc.lock").exists()


def test_without_git_the_files_are_the_ones_git_lists(tmp_path, monkeypatch):
    """A ZIP download or a bare GPU image: no git on PATH. The walk over the .gitignore files finds exactly what
    `git ls-files --cached --others --exclude-standard` lists, here and in this project."""
    root = _project(tmp_path)
    (root / "src/new.py").write_text("")  # untracked, not ignored: copied as git would list it
    with_git = demo.project_files(root)
    assert sorted(demo.walk_files(root)) == sorted(subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root, capture_output=True,
        text=True, check=True).stdout.splitlines())
    assert sorted(demo.walk_files(ROOT)) == sorted(subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True,
        text=True, check=True).stdout.splitlines())
    no_git = tmp_path / "bin"
    no_git.mkdir()
    monkeypatch.setenv("PATH", str(no_git))
    assert shutil.which("git") is None
    assert sorted(demo.project_files(root)) == sorted(with_git)
    work = tmp_path / "ws"
    demo.make_workspace(root, work, [], None)
    assert (work / "src/new.py").exists() and not (work / "cache/x").exists()
    assert "no_scm = true" in (work / ".dvc/config.local").read_text()  # DVC without an SCM


def test_laptop_without_local_data_reads_the_hub_id(tmp_path, monkeypatch):
    """`make laptop` with no local DialogSum: the profile keeps params.yaml's data.source (the Hub id) and the
    pipeline is not forced offline (the Hub-path tests read that id from a seeded cache: test_hub_path.py)."""
    calls = []
    monkeypatch.setattr(demo.subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)) or
                        subprocess.CompletedProcess(cmd, 0))
    monkeypatch.setattr(demo, "make_workspace", lambda root, work, overrides, data, seed, fresh: calls.append(
        ("workspace", data, fresh)) or False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert demo.main(["--profile", "laptop", "--workspace", str(tmp_path / "ws")]) == 0
    assert ("workspace", None, False) in calls
    env = next(kw["env"] for cmd, kw in calls[1:] if cmd[-1] == "repro")
    assert "HF_HUB_OFFLINE" not in env
    params = demo.profile_params(yaml.safe_load((ROOT / "params.yaml").read_text()),
                                 [ROOT / "configs/laptop.yaml"], None)
    assert params["data"]["source"] == yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["source"]
    calls.clear()
    demo.main(["--profile", "laptop", "--data", str(ROOT / "sample_data/dialogsum-mini"), "--fresh",
               "--workspace", str(tmp_path / "ws")])
    assert calls[0][2] is True and next(kw["env"] for cmd, kw in calls[1:])["HF_HUB_OFFLINE"] == "1"


def test_a_workspace_runs_its_own_copy_of_the_library(tmp_path):
    """A workspace's stages import its copy of src/, not the project's editable install: the project's code may
    change while a run is under way (scripts/seeds.py met exactly that: a stage script of the copy importing a
    name the project had since moved)."""
    import sys

    (tmp_path / "src/summarizer").mkdir(parents=True)
    (tmp_path / "src/summarizer/__init__.py").write_text("")
    env = demo.workspace_env(tmp_path, base={"PATH": os.environ["PATH"], "PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"] == f"{tmp_path / 'src'}{os.pathsep}/elsewhere" and env["HF_HUB_OFFLINE"] == "1"
    where = subprocess.run([sys.executable, "-c", "import summarizer; print(summarizer.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where == str(tmp_path / "src/summarizer/__init__.py")
    assert "HF_HUB_OFFLINE" not in demo.workspace_env(tmp_path, offline=False, base={})


@pytest.mark.parametrize("target,expected", [("laptop", "--profile laptop"), ("demo", "scripts/demo.py")])
def test_make_passes_fresh_and_drops_a_missing_data_folder(target, expected):
    dry = subprocess.run(["make", "-n", target, "FRESH=1", "LAPTOP_DATA="], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=os.environ).stdout
    assert expected in dry and "--fresh" in dry and "--data" not in dry
