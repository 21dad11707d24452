"""`make gpu-check ARGS=--tiny`: the GPU check's own code, at the demo's size on a CPU, so that it cannot rot before
a GPU is lent. What a GPU adds (MFU, memory, CUDA backends) is null or recorded as not measured here."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from helpers import DIALOGSUM, ROOT, SAMPLE


@pytest.mark.slow  # the whole pipeline, tiny, in .gpu-check-like workspace: a few minutes
def test_gpu_check_runs_every_stage_and_writes_its_figures(tmp_path):
    data = DIALOGSUM if (DIALOGSUM / "train.jsonl").exists() else SAMPLE
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/gpu_check.py"), "--tiny", "--data", str(data),
                           "--workspace", str(tmp_path / "ws"), "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["tiny"] and "error" not in figures
    assert figures["tests"]["exit_code"] == 0 and "skipped" in figures["tests"]["summary"]  # no GPU here
    # every stage of dvc.yaml ran, each timed
    doc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    expected = {name if "foreach" not in s else f"{name}@{k}" for name, s in doc["stages"].items()
                for k in (s.get("foreach") or [None])}
    assert set(figures["stages_s"]) == expected
    assert all(v >= 0 for v in figures["stages_s"].values())
    training = figures["training"]
    assert training["full"]["tokens_per_s"] > 0 and training["ppo_step_s"] > 0
    assert training["bf16_peak_flops"] is None and "mfu" not in training["full"]  # no GPU, no peak to divide by
    generation = figures["generation"]
    assert generation["transformers"]["tokens_per_s"] > 0
    assert generation["ctranslate2"]["backend"] == "ctranslate2" and generation["ctranslate2"]["tokens_per_s"] > 0
    assert 0 <= generation["greedy_bf16_vs_fp32_identical_share"] <= 1
    assert figures["processes"] == {"measured": False, "why": "0 GPU(s): needs 2"}
    assert figures["peak_gpu_memory_mib"] is None
