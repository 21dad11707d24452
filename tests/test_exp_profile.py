"""configs/course.yaml as one DVC experiment (issue 36, item 2): the -S flags set exactly the profile's values,
the merged params are valid, and every key of the profile is a real difference from params.yaml."""

import yaml

from helpers import ROOT
from demo import deep_merge
from exp_profile import command, flatten

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
COURSE = yaml.safe_load((ROOT / "configs/course.yaml").read_text())


def _apply(params: dict, pairs: list[str]) -> dict:
    """What `dvc exp run -S key=value` does to params.yaml: the value parsed as YAML, set at the dotted key."""
    out = yaml.safe_load(yaml.safe_dump(params))
    for pair in pairs:
        key, value = pair.split("=", 1)
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    return out


def test_the_flags_set_exactly_the_profiles_values():
    assert _apply(PARAMS, flatten(COURSE)) == deep_merge(PARAMS, COURSE)
    assert flatten({"a": {"b": [1, "q"]}, "c": 1e-5, "d": False}) == ["a.b=[1, q]", "c=1.0e-05", "d=false"]


def test_every_course_key_differs_from_params_yaml():
    for pair in flatten(COURSE):
        key, _ = pair.split("=", 1)
        node = PARAMS
        for part in key.split("."):
            node = node[part]
        assert _apply(PARAMS, [pair]) != PARAMS, f"{key} is params.yaml's own value: not a difference"


def test_the_command_is_one_named_experiment():
    cmd = command(ROOT / "configs/course.yaml", "course")
    assert cmd[1:6] == ["-m", "dvc", "exp", "run", "--name"] and cmd[6] == "course"
    assert "lr=1.0e-05" in cmd and "toxic_references.share=0.0" in cmd
