"""Shared fixtures: offline mode, the project's params with tiny-model overrides, and a tiny prepared workspace."""

from __future__ import annotations

import copy
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

from helpers import reset_accelerate, tiny_params, write_params  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _fresh_accelerate_state():
    """accelerate keeps its device and precision in process-wide singletons: a module that set them (test_gpu.py:
    CUDA, bf16) made the next module's PPO trainers fail with "AcceleratorState has already been initialized".
    Each test module starts from none."""
    yield
    reset_accelerate()


@pytest.fixture
def params() -> dict:
    return copy.deepcopy(tiny_params())


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory) -> Path:
    """prepare_data, base_model, classifier, tokenize and convert (of the base) run once on the sample data with
    tiny models."""
    from stages import base_model, classifier, convert, prepare_data, tokenize_data

    ws = tmp_path_factory.mktemp("ws")
    p = str(write_params(ws / "params.yaml", tiny_params()))
    prepare_data.main(["--params", p, "--out", str(ws / "data/prepared"), "--metrics", str(ws / "metrics/data.json")])
    train = str(ws / "data/prepared/train.jsonl")
    base_model.main(["--params", p, "--train", train, "--validation", str(ws / "data/prepared/validation.jsonl"),
                     "--out", str(ws / "models/base"), "--work", str(ws / "checkpoints/base"),
                     "--live", str(ws / "dvclive/pretrain"), "--metrics", str(ws / "metrics/models/base.json")])
    classifier.main(["--params", p, "--train", train, "--out", str(ws / "models/classifier"),
                     "--metrics", str(ws / "metrics/models/classifier.json")])
    tokenize_data.main(["--params", p, "--data", str(ws / "data/prepared"), "--tokenizer", str(ws / "models/base"),
                        "--out", str(ws / "data/tokenized"), "--metrics", str(ws / "metrics/tokenize.json")])
    convert.main(["--params", p, "--model", str(ws / "models/base"), "--base-model", str(ws / "models/base"),
                  "--out", str(ws / "models/ctranslate2/base"),
                  "--metrics", str(ws / "metrics/models/ctranslate2/base.json")])
    return ws
