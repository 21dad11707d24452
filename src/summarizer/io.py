"""Atomic writes (temp file or folder + rename) and JSON Lines: a stage killed at any moment leaves each output
either absent or whole, never half written."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        # mkstemp creates 0600; the file gets the mode any other write would (0644 under the usual umask), so a
        # teammate sharing the workspace or the DVC cache can read it.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def partial_dir(path: str | Path) -> Path:
    """Where a folder output is written before it is renamed into place (a hidden sibling of ``path``)."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


def start_partial_dir(path: str | Path) -> Path:
    """An empty :func:`partial_dir` for ``path`` (one left by a killed run is removed first)."""
    partial = partial_dir(path)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def publish_dir(partial: str | Path, path: str | Path) -> None:
    """Replace ``path`` with the finished ``partial`` folder: between the two calls ``path`` is absent, never
    half written."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    os.replace(partial, path)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Write a folder output (a saved model) into a temporary folder that becomes ``path`` only when complete."""
    partial = start_partial_dir(path)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    publish_dir(partial, path)


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# Decimals of every statistic in the metrics files (scores, toxicity, shares): six keep a paired difference of 1e-4
# readable. Losses, rewards and KL come from float32 training (values ~1-10, about 7 significant digits) whose last
# digit moves between two identical runs on a multithreaded CPU (BLAS summation order): they keep the 4 decimals that
# repeat (tests/test_pipeline.py, same inputs same numbers). Timings pass 2.
METRIC_DIGITS = 6
LOSS_DIGITS = 4


def rounded(value: Any, digits: int = METRIC_DIGITS) -> Any:
    """``value`` with every float in it (through dicts and lists) rounded to ``digits`` decimals."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value
