"""Device and precision: resolved in one place for every stage that runs a model.

The resolution rules are pure functions of :class:`RuntimeFacts` so they can be unit-tested on a machine without
a GPU; :func:`runtime_facts` asks torch for the real facts and :func:`select_runtime` applies the choice. Only
here is ``device`` checked against this machine (the config checks its spelling), so stages that never touch a
model (prepare_data, compare, report) run on a laptop whatever the params say.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from summarizer.errors import DeviceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeFacts:
    cuda_count: int
    cuda_bf16: tuple[bool, ...]  # per visible GPU
    mps_available: bool


@dataclass(frozen=True)
class Runtime:
    device: str  # "cpu", "cuda:N" or "mps"
    precision: str  # "fp32", "bf16" or "fp16"
    # What the params asked for: "cpu" is a choice, "auto" landing on the CPU may be a failed CUDA install
    # (:func:`guard_large_model_on_cpu`). Built by hand, a Runtime on the CPU is a choice.
    requested: str = field(default="cpu", compare=False)

    @property
    def torch_dtype(self) -> torch.dtype:
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


def pin_visible_gpu(requested: str, env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """(environment updates, device to resolve) that make a single-process run see only the GPU it was given.

    Must be applied before CUDA starts. transformers' Trainer ignores ``torch.cuda.set_device``: outside a
    distributed launch it puts the model on ``cuda:0`` (``training_args.py`` ~1943) and, when it sees several GPUs,
    wraps it in ``DataParallel`` (``trainer.py`` ~2666), so batch size, step count and results would depend on the
    machine. accelerate (PPO) picks ``cuda`` likewise. Hiding the other GPUs makes the chosen one ``cuda:0``.
    ``cuda:N`` indexes the GPUs visible before pinning (an existing ``CUDA_VISIBLE_DEVICES`` list is respected).
    """
    if requested in ("cpu", "mps"):
        return {}, requested
    match = _CUDA.match(requested)
    if requested != "auto" and not match:
        return {}, requested  # resolve_device reports the bad value
    index = int(match.group(1) or 0) if match else 0
    visible = env.get("CUDA_VISIBLE_DEVICES")
    # An empty CUDA_VISIBLE_DEVICES hides every GPU on purpose: it is an (empty) list to respect, not "unset".
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible is not None else None
    if ids is not None and index >= len(ids):
        return {}, requested  # not there: resolve_device names the device and what is visible
    pinned = ids[index] if ids is not None else str(index)
    return {"CUDA_VISIBLE_DEVICES": pinned}, "auto" if requested == "auto" else "cuda:0"


def select_pinned_runtime(requested: str, precision: str, *, deterministic: bool) -> Runtime:
    """:func:`pin_visible_gpu` applied to this process, then :func:`select_runtime`. Call before CUDA starts."""
    updates, device = pin_visible_gpu(requested, os.environ)
    os.environ.update(updates)
    try:
        return select_runtime(device, precision, deterministic=deterministic)
    except DeviceError as err:
        if updates.get("CUDA_VISIBLE_DEVICES") is not None and device != requested:
            raise DeviceError(f"params.yaml: device must exist on this machine, got {requested!r} "
                              f"(CUDA_VISIBLE_DEVICES={updates['CUDA_VISIBLE_DEVICES']} shows no usable GPU: "
                              f"{str(err).removeprefix('params.yaml: ')})") from None
        raise


def check_num_processes(num_processes: int, device: str, facts: RuntimeFacts,
                        key: str = "training.num_processes") -> None:
    """``key`` (a ``num_processes`` param) > 1 runs one process per GPU: refuse more processes than GPUs present."""
    if num_processes <= 1:
        return
    if device.startswith("cuda") or (device == "auto" and facts.cuda_count):
        if num_processes > facts.cuda_count:
            raise DeviceError(f"{key} must be <= the number of GPUs present ({facts.cuda_count}), "
                              f"got {num_processes}")
    elif device == "mps" or (device == "auto" and facts.mps_available):
        # auto resolves to MPS in every child process on a Mac: accelerate forms no group there, so each would be
        # rank 0, generate everything and write the same outputs.
        where = "on MPS" if device == "mps" else "where device auto resolves to MPS (set device: cpu for CPU processes)"
        raise DeviceError(f"{key} must be 1 {where}, got {num_processes}")
    # device cpu (or auto without a GPU): several CPU processes over gloo, which works anywhere


def resolve_batch_size(value: int | str, device: str, *, cpu: int = 16, cuda: int = 64) -> int:
    """A ``batch_size: auto`` param: ``cuda`` on a GPU (generation is memory-light next to training, and 16
    sequences leave an H100 mostly idle), ``cpu`` elsewhere; an integer is used as it is."""
    if value != "auto":
        return int(value)
    return cuda if device.startswith("cuda") else cpu


# Generation on a GPU: sequences per batch from free memory. Past a few hundred sequences a batch gains nothing for a
# FLAN-T5-sized model (every step is already one large matrix product), and a larger batch only delays the first
# results and the progress bar.
GPU_BATCH_CAP = 256
GPU_MEMORY_SHARE = 0.5  # of the memory free when the model is loaded: room for the allocator's fragmentation


def generation_bytes_per_sequence(*, num_decoder_layers: int, num_heads: int, d_kv: int, d_model: int,
                                  vocab_size: int, source_tokens: int, new_tokens: int, bytes_per_value: int) -> int:
    """Memory one sequence holds while it is generated: the decoder's key/value caches (cross-attention over the
    source, self-attention over the new tokens: 2 × layers × heads × d_kv per position), the encoder output it
    attends to (with room for the encoder's activations while it runs, ×4), and one step's logits in fp32
    (transformers' logits processors upcast them)."""
    cache = 2 * num_decoder_layers * num_heads * d_kv * (source_tokens + new_tokens) * bytes_per_value
    encoder = 4 * source_tokens * d_model * bytes_per_value
    return cache + encoder + 4 * vocab_size


def gpu_generation_batch_size(free_bytes: int, per_sequence: int, *, cap: int = GPU_BATCH_CAP,
                              share: float = GPU_MEMORY_SHARE) -> int:
    """``batch_size: auto`` on CUDA: as many sequences as ``share`` of the free memory holds, at most ``cap``."""
    return max(1, min(cap, int(free_bytes * share) // max(1, per_sequence)))


def runtime_facts() -> RuntimeFacts:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    bf16 = tuple(torch.cuda.get_device_capability(i)[0] >= 8 for i in range(count))
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return RuntimeFacts(cuda_count=count, cuda_bf16=bf16, mps_available=mps)


def select_runtime(device: str, precision: str, *, deterministic: bool,
                   facts: RuntimeFacts | None = None) -> Runtime:
    """Check the params' ``device``/``precision`` against this machine, apply them and the ``deterministic``
    switch: make ``cuda:N`` the current device so that Trainer/accelerate (which use "cuda") use it.

    Raises DeviceError (a ConfigError naming the key) when this machine lacks the device or the precision.
    """
    facts = facts or runtime_facts()
    try:
        resolved = resolve_device(device, facts)
        local_rank = os.environ.get("LOCAL_RANK")
        if local_rank is not None and resolved.startswith("cuda"):
            resolved = f"cuda:{int(local_rank)}"  # under `accelerate launch` each process owns the GPU of its rank
        runtime = Runtime(resolved, resolve_precision(precision, resolved, facts), requested=device)
    except DeviceError as err:
        raise DeviceError(f"params.yaml: {err}") from None
    if resolved.startswith("cuda"):
        torch.cuda.set_device(int(resolved.split(":")[1]))
    set_determinism(deterministic)
    log.info("device %s, precision %s", runtime.device, runtime.precision)
    return runtime


def set_determinism(enabled: bool) -> None:
    """Ask torch for deterministic algorithms (params ``deterministic``), so seeded runs repeat exactly.

    ``warn_only``: an op without a deterministic implementation warns instead of stopping a long run. On CUDA,
    cuBLAS needs a fixed workspace for deterministic matrix products (set before its first use) and cuDNN must not
    pick algorithms by timing. Costs speed on some GPUs; on a CPU it changes nothing measurable.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    log.info("deterministic algorithms: %s", "on" if enabled else "off")


# A model of at least this many parameters is FLAN-T5-sized (flan-t5-small has 77 M): on a CPU its training takes
# hours to days. The learning profile's own T5 has 1.4 M.
CPU_PARAMETER_LIMIT = 20_000_000
# Sustained fp32 FLOP/s assumed for PyTorch on a CPU in the time estimate: about what a recent 8-core laptop reaches
# on large matrix products, and more than this 2-core machine does. An assumption, said so in the message.
CPU_ASSUMED_FLOPS = 1.0e11


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    if hours >= 48:
        return f"{hours / 24:.1f} days"
    return f"{hours:.1f} hours" if hours >= 1 else f"{seconds / 60:.0f} min"


def guard_large_model_on_cpu(runtime: Runtime, parameters: int, *, what: str, flops: float | None = None) -> None:
    """A FLAN-T5-sized model about to run a stage on the CPU: refused when ``device: auto`` fell back to the CPU
    (the usual cause is a CPU-only torch on a GPU machine), with the estimate and the way out; a warning when the
    params chose ``device: cpu``. Smaller models, and any model on a GPU, pass silently."""
    if runtime.device != "cpu" or parameters < CPU_PARAMETER_LIMIT:
        return
    estimate = (f", about {flops:.1e} FLOPs: {_duration(flops / CPU_ASSUMED_FLOPS)} at an assumed "
                f"{CPU_ASSUMED_FLOPS / 1e9:.0f} GFLOP/s" if flops else "")
    message = f"{what} would run a {parameters / 1e6:.0f} M-parameter model on the CPU{estimate}"
    if runtime.requested == "cpu":
        log.warning("%s (params: device: cpu).", message)
        return
    cuda = (f"torch {torch.__version__} is a CPU-only build" if torch.version.cuda is None
            else f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no usable GPU")
    raise DeviceError(f"params.yaml: device: {runtime.requested} resolved to the CPU ({cuda}), and {message}. "
                      "Install torch's CUDA build (docs/gpu.md; check: python -c \"print(__import__('torch')"
                      ".cuda.is_available())\" prints True), or set device: cpu to run it on the CPU anyway.")
