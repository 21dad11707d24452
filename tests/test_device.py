import os

import pytest

from summarizer.device import DeviceError, RuntimeFacts, resolve_device, resolve_precision

CPU_ONLY = RuntimeFacts(0, (), False)
MAC = RuntimeFacts(0, (), True)
TWO_GPUS = RuntimeFacts(2, (True, False), False)  # an Ampere and an older card


@pytest.mark.parametrize("facts,requested,expected", [
    (CPU_ONLY, "auto", "cpu"),
    (MAC, "auto", "mps"),
    (TWO_GPUS, "auto", "cuda:0"),
    (TWO_GPUS, "cuda", "cuda:0"),
    (TWO_GPUS, "cuda:1", "cuda:1"),
    (TWO_GPUS, "cpu", "cpu"),
    (MAC, "mps", "mps"),
])
def test_resolve_device(facts, requested, expected):
    assert resolve_device(requested, facts) == expected


@pytest.mark.parametrize("facts,requested", [(TWO_GPUS, "cuda:2"), (CPU_ONLY, "cuda"), (CPU_ONLY, "mps"),
                                             (CPU_ONLY, "gpu"), (TWO_GPUS, "cuda:-1")])
def test_resolve_device_rejects(facts, requested):
    with pytest.raises(DeviceError):
        resolve_device(requested, facts)


@pytest.mark.parametrize("requested,device,expected", [
    ("auto", "cpu", "fp32"),
    ("auto", "mps", "fp32"),
    ("auto", "cuda:0", "bf16"),
    ("auto", "cuda:1", "fp32"),  # no bf16 on that card, and fp16 is never automatic for T5
    ("fp16", "cuda:1", "fp16"),
    ("fp32", "cuda:0", "fp32"),
    ("bf16", "cuda:0", "bf16"),
])
def test_resolve_precision(requested, device, expected):
    assert resolve_precision(requested, device, TWO_GPUS) == expected


@pytest.mark.parametrize("requested,device", [("bf16", "cuda:1"), ("bf16", "cpu"), ("fp16", "cpu"), ("fp16", "mps")])
def test_resolve_precision_rejects(requested, device):
    with pytest.raises(DeviceError):
        resolve_precision(requested, device, TWO_GPUS)


# --------------------------------------------------------------------------------------------------------------------
# One process, one GPU: transformers' Trainer ignores torch.cuda.set_device (cuda:0) and wraps a model that sees
# several GPUs in DataParallel, so the stage restricts the visible GPUs before CUDA starts.

from summarizer.device import check_num_processes, pin_visible_gpu, resolve_batch_size  # noqa: E402


@pytest.mark.parametrize("requested,env,updates,device", [
    ("cuda:1", {}, {"CUDA_VISIBLE_DEVICES": "1"}, "cuda:0"),
    ("cuda", {}, {"CUDA_VISIBLE_DEVICES": "0"}, "cuda:0"),
    ("auto", {}, {"CUDA_VISIBLE_DEVICES": "0"}, "auto"),
    ("cuda:1", {"CUDA_VISIBLE_DEVICES": "4,6,7"}, {"CUDA_VISIBLE_DEVICES": "6"}, "cuda:0"),
    ("cuda:3", {"CUDA_VISIBLE_DEVICES": "4,6,7"}, {}, "cuda:3"),  # not there: resolve_device names it
    ("cpu", {}, {}, "cpu"),
    ("mps", {}, {}, "mps"),
    # GPUs hidden on purpose: never unhidden (auto then finds no GPU; cuda is refused by resolve_device)
    ("auto", {"CUDA_VISIBLE_DEVICES": ""}, {}, "auto"),
    ("cuda", {"CUDA_VISIBLE_DEVICES": ""}, {}, "cuda"),
    ("cuda:0", {"CUDA_VISIBLE_DEVICES": " "}, {}, "cuda:0"),
])
def test_pin_visible_gpu(requested, env, updates, device):
    assert pin_visible_gpu(requested, env) == (updates, device)


def test_finetune_stage_hands_training_one_gpu(tiny_workspace, tmp_path, monkeypatch):
    """The environment and device the training function gets for `device: cuda:1` (faked: no GPU here)."""
    from helpers import tiny_params, write_params
    from stages import finetune
    from summarizer.device import Runtime

    raw = tiny_params()
    raw["device"] = "cuda:1"
    params = write_params(tmp_path / "params.yaml", raw)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    for var in ("LOCAL_RANK", "ACCELERATE_LAUNCHED"):
        monkeypatch.delenv(var, raising=False)
    seen = {}

    def fake_select_runtime(device, precision, *, deterministic, facts=None):
        seen["visible"], seen["device"] = __import__("os").environ.get("CUDA_VISIBLE_DEVICES"), device
        return Runtime("cpu", "fp32")  # train on the CPU: the point is what the stage asked for

    def fake_train(request, **kwargs):
        seen["train"] = True
        return {"steps": 0}

    monkeypatch.setattr("summarizer.device.select_runtime", fake_select_runtime)
    monkeypatch.setattr(finetune, "train", fake_train)
    finetune.main(["--params", str(params), "--method", "lora", "--base-model", "models/base", "--features",
                   "data/tokenized", "--out", str(tmp_path / "out"),
                   "--checkpoints", str(tmp_path / "ckpt"), "--live", str(tmp_path / "live"),
                   "--metrics", str(tmp_path / "m.json")])
    assert seen == {"visible": "1", "device": "cuda:0", "train": True}


@pytest.mark.parametrize("procs,device,facts,ok", [
    (1, "cuda", TWO_GPUS, True),
    (2, "cuda", TWO_GPUS, True),
    (3, "cuda", TWO_GPUS, False),
    (3, "auto", TWO_GPUS, False),
    (2, "cpu", CPU_ONLY, True),  # CPU processes over gloo
    (2, "auto", CPU_ONLY, True),
    (2, "mps", MAC, False),
    (2, "auto", MAC, False),  # each child would resolve auto to MPS and run alone as rank 0
    (2, "cpu", MAC, True),
])
def test_check_num_processes(procs, device, facts, ok):
    if ok:
        check_num_processes(procs, device, facts)
    else:
        with pytest.raises(DeviceError, match="training.num_processes must be"):
            check_num_processes(procs, device, facts)


@pytest.mark.slow  # a stage in a subprocess
def test_finetune_stage_refuses_more_processes_than_gpus(tmp_path, monkeypatch):
    import subprocess
    import sys

    from helpers import ROOT, tiny_params, write_params

    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0  # this machine's, whatever it has
    raw = tiny_params()
    asked = max(2, gpus + 1)  # more processes than GPUs (1 process is never relaunched)
    raw["device"], raw["training"]["num_processes"] = "cuda", asked
    params = write_params(tmp_path / "params.yaml", raw)
    proc = subprocess.run([sys.executable, str(ROOT / "stages/finetune.py"), "--params", str(params), "--method",
                           "lora", "--base-model", "b", "--features", "f", "--out", "o", "--checkpoints", "c",
                           "--live", "l", "--metrics", "m.json"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    # one process more than the GPUs present is refused before anything is launched, naming the key
    assert f"training.num_processes must be <= the number of GPUs present ({gpus}), got {asked}" in proc.stderr


@pytest.mark.parametrize("value,device,expected", [("auto", "cpu", 16), ("auto", "cuda:0", 64), ("auto", "mps", 16),
                                                   (8, "cuda:0", 8)])
def test_resolve_batch_size(value, device, expected):
    assert resolve_batch_size(value, device) == expected


def test_determinism_switch_reaches_torch(monkeypatch):
    import torch

    from summarizer.device import set_determinism

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        set_determinism(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        set_determinism(False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_gpu_generation_batch_size_follows_memory_and_model():
    """FLAN-T5-base in bf16, 512 source and 128 new tokens: ~24 MB a sequence (its caches), so an 80 GB GPU with
    70 GB free is capped at 256 and a 16 GB GPU with 12 GB free gets what half of that holds."""
    from summarizer.device import GPU_BATCH_CAP, generation_bytes_per_sequence, gpu_generation_batch_size

    base = dict(num_decoder_layers=12, num_heads=12, d_kv=64, d_model=768, vocab_size=32128, source_tokens=512,
                new_tokens=128)
    per_sequence = generation_bytes_per_sequence(**base, bytes_per_value=2)
    assert 20e6 < per_sequence < 30e6
    assert generation_bytes_per_sequence(**base, bytes_per_value=4) > 1.9 * per_sequence  # fp32 caches: twice
    assert gpu_generation_batch_size(70 * 2**30, per_sequence) == GPU_BATCH_CAP
    small = gpu_generation_batch_size(12 * 2**30, per_sequence)
    assert small == int(12 * 2**30 * 0.5) // per_sequence and 200 < small < GPU_BATCH_CAP
    assert gpu_generation_batch_size(10**6, per_sequence) == 1  # never zero
    xl = generation_bytes_per_sequence(**(base | dict(num_decoder_layers=24, num_heads=32, d_model=2048)),
                                       bytes_per_value=2)
    assert gpu_generation_batch_size(12 * 2**30, xl) < small / 3  # a larger model gets fewer sequences


# --- a FLAN-T5-sized model that lands on the CPU (issue 36, item 1) ---
from summarizer.device import Runtime, guard_large_model_on_cpu  # noqa: E402


def test_auto_falling_back_to_the_cpu_refuses_a_flan_sized_model_with_an_estimate():
    with pytest.raises(DeviceError) as err:
        guard_large_model_on_cpu(Runtime("cpu", "fp32", requested="auto"), 248_000_000, what="finetune full",
                                 flops=1.2e16)
    message = str(err.value)
    assert "device: auto resolved to the CPU" in message and "248 M-parameter" in message
    assert "33.3 hours" in message and "100 GFLOP/s" in message  # 1.2e16 / 1e11 s, the assumption said
    assert "cuda.is_available()" in message and "set device: cpu" in message


def test_device_cpu_chosen_in_the_params_only_warns(caplog):
    guard_large_model_on_cpu(Runtime("cpu", "fp32", requested="cpu"), 248_000_000, what="finetune full",
                             flops=1.2e16)
    assert "33.3 hours" in caplog.text and "device: cpu" in caplog.text


@pytest.mark.parametrize("runtime, parameters", [(Runtime("cpu", "fp32", requested="auto"), 1_400_000),
                                                 (Runtime("cuda:0", "bf16", requested="auto"), 248_000_000)])
def test_small_models_and_gpus_pass_silently(runtime, parameters, caplog):
    guard_large_model_on_cpu(runtime, parameters, what="finetune full", flops=1e16)
    assert not caplog.text


def test_select_runtime_records_what_the_params_asked_for():
    from summarizer.device import select_runtime

    facts = RuntimeFacts(cuda_count=0, cuda_bf16=(), mps_available=False)
    runtime = select_runtime("auto", "auto", deterministic=False, facts=facts)
    assert (runtime.device, runtime.requested) == ("cpu", "auto")
    assert select_runtime("cpu", "auto", deterministic=False, facts=facts).requested == "cpu"


def test_evaluate_stage_refuses_a_flan_sized_base_on_a_cpu_before_loading_it(tmp_path, monkeypatch):
    """Wired into the stage: only the base's config.json is there (FLAN-T5-base's shape); the refusal comes before
    any weight is read."""
    from transformers import T5Config

    from helpers import tiny_params, write_params
    from summarizer.io import write_jsonl
    from stages import evaluate

    T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_heads=12,
             feed_forward_proj="gated-gelu").save_pretrained(tmp_path / "base")
    write_jsonl(tmp_path / "test.jsonl", [{"id": "t_1", "dialogue_id": "t", "dialogue": "#Person1#: Hi.",
                                           "summary": "They greet.", "topic": "greeting"}])
    raw = tiny_params() | {"device": "auto"}
    params = write_params(tmp_path / "params.yaml", raw)
    monkeypatch.setattr("summarizer.device.runtime_facts",
                        lambda: RuntimeFacts(cuda_count=0, cuda_bf16=(), mps_available=False))
    with pytest.raises(DeviceError, match="device: auto resolved to the CPU.*evaluate full would run a 223 M"):
        evaluate.main(["--params", str(params), "--variant", "full", "--model", str(tmp_path / "base"),
                       "--base-model", str(tmp_path / "base"), "--classifier", str(tmp_path / "none"),
                       "--test", str(tmp_path / "test.jsonl"), "--out", str(tmp_path / "p.jsonl"),
                       "--metrics", str(tmp_path / "m.json")])
