"""The relaunch under `accelerate launch`: what the command carries, and when a stage relaunches."""

import sys

import pytest

from helpers import ROOT, tiny_params, write_params
from summarizer.launch import launch_command

CPU_CONFIG = ROOT / "configs/accelerate/two_cpu_processes.yaml"


def test_a_config_file_is_passed_and_owns_the_process_count():
    cmd = launch_command(["stages/finetune.py", "--method", "lora"], num_processes=4, config_file="fsdp.yaml")
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[3:5] == ["--config_file", "fsdp.yaml"] and "--num_processes" not in cmd and "--multi_gpu" not in cmd
    assert cmd[-3:] == ["stages/finetune.py", "--method", "lora"]


def test_without_a_config_file_the_process_count_is_passed():
    cmd = launch_command(["s.py"], num_processes=2, config_file=None)
    assert cmd[3:] == ["--num_processes", "2", "--multi_gpu", "s.py"]


@pytest.mark.parametrize("procs,config,relaunched", [(1, None, False), (2, None, True), (1, CPU_CONFIG, True)])
def test_finetune_relaunches_with_the_params_config(tmp_path, monkeypatch, procs, config, relaunched):
    from stages import finetune

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("ACCELERATE_LAUNCHED", raising=False)
    raw = tiny_params()
    raw["training"].update(num_processes=procs, accelerate_config=str(config) if config else None)
    params = write_params(tmp_path / "params.yaml", raw)
    seen = {}
    monkeypatch.setattr(finetune, "relaunch", lambda argv, **kw: seen.update(kw, argv=argv))
    monkeypatch.setattr(finetune, "train", lambda *a, **kw: seen.update(trained=True) or {})
    argv = ["--params", str(params), "--method", "lora", "--base-model", "b", "--features", "f", "--out", "o",
            "--checkpoints", "c", "--live", "l", "--metrics", str(tmp_path / "m.json")]
    finetune.main(argv)
    if relaunched:
        assert seen["config_file"] == (str(config) if config else None) and seen["num_processes"] == procs
        assert seen["argv"][1:] == argv and "trained" not in seen
    else:
        assert seen == {"trained": True}


def test_shipped_example_configs_are_accelerate_configs():
    """Each example parses as accelerate's own config class (a misspelled key would fail here)."""
    from accelerate.commands.config.config_args import ClusterConfig

    files = sorted((ROOT / "configs/accelerate").glob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        config = ClusterConfig.from_yaml_file(f)
        assert config.num_processes >= 2, f
