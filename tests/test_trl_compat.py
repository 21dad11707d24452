"""trl 0.11.4 sees optional packages as they are under transformers 5 (summarizer.trl_compat)."""

import importlib.util
import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
{first}
import trl.import_utils as trl_flags
flags = {{n: bool(getattr(trl_flags, "is_" + n + "_available")()) for n in ("diffusers", "unsloth", "liger_kernel",
                                                                       "llmblender", "rich")}}
print(json.dumps(flags))
"""
ABSENT = {"diffusers": "diffusers", "unsloth": "unsloth", "liger_kernel": "liger_kernel", "llmblender": "llm_blender"}


def _flags(first: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], capture_output=True, text=True,
                         timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def absent():
    missing = [flag for flag, package in ABSENT.items() if importlib.util.find_spec(package) is None]
    if not missing:
        pytest.skip("every optional package trl looks for is installed here")
    return missing


def test_trl_sees_absent_packages_as_absent(absent):
    flags = _flags("import summarizer.ppo")  # the project's only way to trl
    assert not any(flags[name] for name in absent), flags
    assert flags["rich"] == (importlib.util.find_spec("rich") is not None)


def test_without_the_fix_trl_believes_them_installed(absent):
    """The defect the fix answers, shown on the installed trl and transformers: if this starts failing, a new
    trl or transformers has fixed it and summarizer.trl_compat can go."""
    flags = _flags("")
    assert all(flags[name] for name in absent), flags
