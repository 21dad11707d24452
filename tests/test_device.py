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
