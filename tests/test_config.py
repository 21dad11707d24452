import dataclasses
import subprocess
import sys

import pytest

from helpers import ROOT, write_params
from summarizer.config import ConfigError, load_params, parse_params
from summarizer.device import RuntimeFacts, select_runtime


def _shipped_params(tmp_path):
    """params.yaml as committed (a user's edits to the working copy are theirs to make)."""
    shipped = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=ROOT, capture_output=True, text=True)
    if shipped.returncode != 0:  # not a git checkout: the file as it is
        return ROOT / "params.yaml"
    (tmp_path / "params.yaml").write_text(shipped.stdout)
    return tmp_path / "params.yaml"


def test_project_params_load(tmp_path):
    cfg = load_params(_shipped_params(tmp_path))
    assert cfg.model.name == "google/flan-t5-base"
    assert cfg.lr == pytest.approx(1e-4)
    assert (cfg.full.optimizer, cfg.lora.optimizer, cfg.prompt_tuning.optimizer) == ("adamw_torch", "adamw_torch",
                                                                                      "adafactor")
    assert cfg.generation.batch_size == "auto" and cfg.ppo.generation_batch_size == "auto"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 2.0


def test_bare_exponent_is_coerced(params):
    params["lr"] = "5e-4"  # what PyYAML gives for a bare 5e-4
    assert parse_params(params).lr == pytest.approx(5e-4)


def test_nullable_and_nested(params):
    params["data"]["max_train_samples"] = 10
    cfg = parse_params(params)
    assert cfg.data.max_train_samples == 10 and cfg.data.max_test_dialogues is None


def _set(raw, dotted, value):
    *parents, last = dotted.split(".")
    for key in parents:
        raw = raw[key]
    if value is _DELETE:
        del raw[last]
    else:
        raw[last] = value


_DELETE = object()

BAD = [
    ("lr", -1.0, "lr must be > 0, got -1.0"),
    ("lr", 0.0, "lr must be > 0, got 0.0"),
    ("lr", "fast", "lr must be a number, got 'fast'"),
    ("seed", "abc", "seed must be an integer, got 'abc'"),
    ("seed", 1.5, "seed must be an integer"),
    ("typo_key", 1, "unknown key typo_key"),
    ("trainng", {}, "unknown key trainng (did you mean training? known keys in the top level:"),
    ("device", "gpu", "device must be one of auto, cpu, cuda, cuda:N, mps, got 'gpu'"),
    ("data.source", "./no/such/folder", "data.source must be an existing folder or a Hub dataset id like owner/name"),
    ("lora.r", 0, "lora.r must be > 0, got 0"),
    ("ppo.mini_batch_size", 3, "ppo.mini_batch_size must divide ppo.batch_size"),
    ("data.sorce", "x", "unknown key data.sorce"),
    ("data.source", _DELETE, "missing key data.source"),
    ("data.max_train_samples", 0, "data.max_train_samples must be > 0, got 0"),
    ("generation.top_p", 1.5, "generation.top_p must be a fraction in [0, 1], got 1.5"),
    ("generation.do_sample", "yes", "generation.do_sample must be true or false"),
    ("precision", "fp8", "precision must be one of auto, fp32, bf16, fp16; got 'fp8'"),
    ("prompt.template", "Summarize: {text}", "prompt.template must contain the placeholder {dialogue}"),
    ("prompt.max_source_tokens", -5, "prompt.max_source_tokens must be between 1 and 4,096"),
    ("prompt.max_source_tokens", 100000, "prompt.max_source_tokens must be between 1 and 4,096 (FLAN-T5 was trained "
                                         "on 512 input tokens; attention memory grows with its square), got 100000"),
    ("prompt.max_target_tokens", 5000, "prompt.max_target_tokens must be between 1 and 1,024"),
    ("generation.max_new_tokens", 100000, "generation.max_new_tokens must be between 1 and 1,024"),
    ("generation.min_new_tokens", 200, "generation.min_new_tokens must be <= generation.max_new_tokens, got 200 > 128"),
    ("ppo.max_new_tokens", 2048, "ppo.max_new_tokens must be between 1 and 1,024"),
    ("classifier.max_tokens", 1024, "classifier.max_tokens must be between 1 and 512 (RoBERTa classifiers"),
    ("app.max_input_chars", 10**7, "app.max_input_chars must be between 1 and 1,000,000"),
    ("app.port", 70000, "app.port must be between 1 and 65,535"),
    ("model", "t5", "model must be a mapping of keys"),
    ("full.optimizer", "sgd", "full.optimizer must be one of adamw_torch, adafactor; got 'sgd'"),
    ("generation.batch_size", "big", "generation.batch_size must be int or auto; got 'big'"),
    ("generation.batch_size", 0, "generation.batch_size must be a positive integer or auto, got 0"),
    ("ppo.generation_batch_size", -2, "ppo.generation_batch_size must be a positive integer or auto"),
    ("ppo.kl_horizon", 0, "ppo.kl_horizon must be > 0, got 0"),
    # the name alone changed: the error says which labels that classifier has (issue 36, item 9)
    ("classifier.name", "alt-profanity-check", "classifier.toxic_label and classifier.nontoxic_label must be "
                                               "offensive and not_offensive for classifier.name alt-profanity-check"),
]


@pytest.mark.parametrize("key,value,message", BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_params_name_the_key(params, key, value, message):
    _set(params, key, value)
    with pytest.raises(ConfigError) as err:
        parse_params(params)
    assert message in str(err.value)
    assert str(err.value).startswith("params.yaml: ")


NO_GPU = RuntimeFacts(cuda_count=0, cuda_bf16=(), mps_available=False)


def test_device_spelling_is_checked_at_load(params):
    params["device"] = "tpu"
    with pytest.raises(ConfigError, match="params.yaml: device must be one of auto, cpu, cuda, cuda:N, mps, "
                                          "got 'tpu'"):
        parse_params(params)


@pytest.mark.parametrize("device", ["cuda", "cuda:3", "mps"])
def test_a_device_this_machine_lacks_is_valid_params(params, monkeypatch, device):
    """Values only: `dvc repro report` on a CPU laptop must not fail because params say cuda."""
    monkeypatch.setattr("summarizer.device.runtime_facts", lambda: (_ for _ in ()).throw(AssertionError("asked")))
    params["device"] = device
    assert parse_params(params).device == device


@pytest.mark.parametrize("device,message", [
    ("cuda", "params.yaml: device must exist on this machine, got 'cuda' (no CUDA GPU visible)"),
    ("cuda:3", "params.yaml: device must exist on this machine, got 'cuda:3'"),
    ("mps", "params.yaml: device must exist on this machine, got 'mps'"),
])
def test_missing_device_fails_where_it_is_used(device, message):
    with pytest.raises(ConfigError) as err:
        select_runtime(device, "fp32", deterministic=False, facts=NO_GPU)
    assert message in str(err.value)


def test_batch_size_accepts_an_integer_or_auto(params):
    params["generation"]["batch_size"] = 24
    assert parse_params(params).generation.batch_size == 24


def test_several_processes_cannot_share_one_named_gpu(params):
    params["device"], params["training"]["num_processes"] = "cuda:1", 2
    with pytest.raises(ConfigError, match="params.yaml: training.num_processes must be 1 with device cuda:1"):
        parse_params(params)


def test_precision_checked_against_device():
    with pytest.raises(ConfigError, match="params.yaml: precision must be supported by device cpu"):
        select_runtime("cpu", "fp16", deterministic=False, facts=NO_GPU)


def test_stage_exits_1_naming_lr(tmp_path, params):
    """The acceptance check: lr: -1.0 makes a stage fail at once, before loading anything, naming lr."""
    params["lr"] = -1.0
    path = write_params(tmp_path / "params.yaml", params)
    proc = subprocess.run([sys.executable, str(ROOT / "stages/prepare_data.py"), "--params", str(path),
                           "--out", str(tmp_path / "out"), "--metrics", str(tmp_path / "m.json")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    assert "params.yaml: lr must be > 0, got -1.0" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_stages_without_a_model_never_import_torch():
    """check_params, prepare_data, references, compare and report read params and files only: importing what they
    import must not start torch (seconds per stage, and a CUDA probe on a GPU machine)."""
    code = ("import sys, runpy\n"
            "for stage in ('check_params', 'prepare_data', 'references', 'compare', 'report'):\n"
            "    runpy.run_path(f'stages/{stage}.py', run_name='not_main')\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_accelerate_config_must_exist_and_leave_the_gpus_to_itself(params, tmp_path):
    params["training"]["accelerate_config"] = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="params.yaml: training.accelerate_config must be an existing file"):
        parse_params(params)
    (tmp_path / "fsdp.yaml").write_text("distributed_type: FSDP\n")
    params["training"]["accelerate_config"] = str(tmp_path / "fsdp.yaml")
    assert parse_params(params).training.accelerate_config == str(tmp_path / "fsdp.yaml")
    params["device"] = "cuda:1"
    with pytest.raises(ConfigError, match="params.yaml: training.accelerate_config must be null with device cuda:1"):
        parse_params(params)


@pytest.mark.parametrize("section", ["full", "lora", "prompt_tuning"])
def test_warmup_ratio_of_one_is_refused(params, section):
    """transformers 5 reads warmup_steps >= 1 as a step count: a ratio of 1.0 would warm up for one step."""
    params[section]["warmup_ratio"] = 1.0
    with pytest.raises(ConfigError, match=rf"{section}\.warmup_ratio must be a share of the steps in \[0, 1\)"):
        parse_params(params)
    params[section]["warmup_ratio"] = 0.99
    assert getattr(parse_params(params), section).warmup_ratio == 0.99
