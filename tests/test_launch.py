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
    monkeypatch.setattr("summarizer.launch.relaunch", lambda argv, **kw: seen.update(kw, argv=argv))
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


def _evaluate(ws, tmp_path, name, model=None, **generation):
    import os
    import subprocess

    from summarizer.io import read_json, read_jsonl

    raw = tiny_params()
    raw["generation"].update(generation)
    params = write_params(tmp_path / f"{name}.yaml", raw)
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "ACCELERATE_LAUNCHED")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "stages/evaluate.py"), "--params", str(params), "--variant", "base",
         "--model", str(model or ws / "models/base"), "--base-model", str(model or ws / "models/base"),
         "--classifier", str(ws / "models/classifier"), "--test", str(ws / "data/prepared/test.jsonl"),
         "--out", str(tmp_path / f"{name}.jsonl"), "--metrics", str(tmp_path / f"{name}.json")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env | {"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_jsonl(tmp_path / f"{name}.jsonl"), read_json(tmp_path / f"{name}.json"), proc.stderr


@pytest.mark.slow  # six evaluate stages in subprocesses, four of them with two processes
def test_two_process_generation_matches_one_and_sampling_repeats(tiny_workspace, tmp_path):
    # The tiny base model, re-initialised at 10x the weight scale: its greedy summaries differ from dialogue to
    # dialogue (at the usual scale they are nearly all the same text), so texts put back in the wrong order show.
    import torch
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    from summarizer.modeling import load_tokenizer

    config = AutoConfig.from_pretrained(tiny_workspace / "models/base")
    config.initializer_factor = 10.0
    torch.manual_seed(0)
    varied = tmp_path / "varied"
    AutoModelForSeq2SeqLM.from_config(config).save_pretrained(varied)
    load_tokenizer(tiny_workspace / "models/base").save_pretrained(varied)

    one, one_metrics, _ = _evaluate(tiny_workspace, tmp_path, "one", model=varied, num_processes=1)
    two, two_metrics, log = _evaluate(tiny_workspace, tmp_path, "two", model=varied, num_processes=2)
    dialogues = {r["dialogue_id"]: r["prediction"] for r in one}
    assert len(set(dialogues.values())) == len(dialogues) > 2, "each dialogue its own text"
    # both processes generated a share: the work was really split
    n = len(one)
    assert f"process 0 of 2: generating {(n + 1) // 2} of {n} texts" in log
    assert f"process 1 of 2: generating {n // 2} of {n} texts" in log
    assert [r["prediction"] for r in two] == [r["prediction"] for r in one]  # greedy: same texts, same order
    assert two == one and two_metrics == one_metrics
    # beam search: the same texts too
    beams = [_evaluate(tiny_workspace, tmp_path, f"beam{k}", model=varied, num_processes=k, num_beams=3)[0]
             for k in (1, 2)]
    assert [r["prediction"] for r in beams[1]] == [r["prediction"] for r in beams[0]]
    # sampling: the same seed and number of processes give the same texts
    sampled = [_evaluate(tiny_workspace, tmp_path, f"sampled{i}", model=varied, num_processes=2, do_sample=True,
                         temperature=50.0)[0] for i in range(2)]
    assert [r["prediction"] for r in sampled[0]] == [r["prediction"] for r in sampled[1]]
    assert [r["prediction"] for r in sampled[0]] != [r["prediction"] for r in one]
