"""Device and precision: resolved in one place for every stage.

The resolution rules are pure functions of :class:`RuntimeFacts` so they can be unit-tested on a machine without
a GPU; :func:`runtime_facts` asks torch for the real facts and :func:`select_runtime` applies the choice.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)


class DeviceError(ValueError):
    """The requested device or precision does not exist on this machine."""


@dataclass(frozen=True)
class RuntimeFacts:
    cuda_count: int
    cuda_bf16: tuple[bool, ...]  # per visible GPU
    mps_available: bool


@dataclass(frozen=True)
class Runtime:
    device: str  # "cpu", "cuda:N" or "mps"
    precision: str  # "fp32", "bf16" or "fp16"

    @property
    def torch_dtype(self):
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]


_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def resolve_device(requested: str, facts: RuntimeFacts) -> str:
    """``auto`` → first GPU, else MPS, else CPU. ``cuda`` means GPU 0; ``cuda:N`` must exist."""
    if requested == "auto":
        if facts.cuda_count:
            return "cuda:0"
        return "mps" if facts.mps_available else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "mps":
        if not facts.mps_available:
            raise DeviceError("device must exist on this machine, got 'mps' (MPS is not available)")
        return "mps"
    match = _CUDA.match(requested)
    if not match:
        raise DeviceError(f"device must be one of auto, cpu, cuda, cuda:N, mps; got {requested!r}")
    index = int(match.group(1) or 0)
    if index >= facts.cuda_count:
        seen = f"{facts.cuda_count} GPU(s) visible" if facts.cuda_count else "no CUDA GPU visible"
        raise DeviceError(f"device must exist on this machine, got {requested!r} ({seen})")
    return f"cuda:{index}"


def resolve_precision(requested: str, device: str, facts: RuntimeFacts) -> str:
    """``auto`` → bf16 on a GPU that supports it, else fp32.

    fp16 is never chosen automatically: T5 checkpoints were trained in bf16 and overflow to NaN in fp16.
    """
    on_cuda = device.startswith("cuda")
    bf16_ok = on_cuda and facts.cuda_bf16[int(device.split(":")[1])]
    if requested == "auto":
        return "bf16" if bf16_ok else "fp32"
    if requested == "fp32":
        return "fp32"
    if requested == "bf16" and not bf16_ok:
        raise DeviceError(f"precision must be supported by device {device}, got 'bf16'")
    if requested == "fp16" and not on_cuda:
        raise DeviceError(f"precision must be supported by device {device}, got 'fp16' (fp16 needs a CUDA GPU)")
    return requested


def runtime_facts() -> RuntimeFacts:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    bf16 = tuple(torch.cuda.get_device_capability(i)[0] >= 8 for i in range(count))
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return RuntimeFacts(cuda_count=count, cuda_bf16=bf16, mps_available=mps)


def select_runtime(device: str, precision: str, facts: RuntimeFacts | None = None) -> Runtime:
    """Resolve and apply: make ``cuda:N`` the current device so that Trainer/accelerate (which use "cuda") use it."""
    facts = facts or runtime_facts()
    resolved = resolve_device(device, facts)
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is not None and resolved.startswith("cuda"):
        resolved = f"cuda:{int(local_rank)}"  # under `accelerate launch` each process owns the GPU of its rank
    runtime = Runtime(resolved, resolve_precision(precision, resolved, facts))
    if resolved.startswith("cuda"):
        import torch

        torch.cuda.set_device(int(resolved.split(":")[1]))
    log.info("device %s, precision %s", runtime.device, runtime.precision)
    return runtime
