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
    assert training["full"]["step_samples_per_s"] > training["full"]["trainer_samples_per_s"]  # evals left out
    estimate = figures["default_pipeline_estimate"]
    assert set(estimate["stages_s"]) == expected and estimate["total_s"] > sum(figures["stages_s"].values())
    assert training["bf16_peak_flops"] is None and "mfu" not in training["full"]  # no GPU, no peak to divide by
    generation = figures["generation"]
    assert generation["transformers"]["tokens_per_s"] > 0
    assert generation["ctranslate2"]["backend"] == "ctranslate2" and generation["ctranslate2"]["tokens_per_s"] > 0
    assert 0 <= generation["greedy_bf16_vs_fp32_identical_share"] <= 1
    assert figures["processes"] == {"measured": False, "why": "0 GPU(s): needs 2"}
    assert figures["peak_gpu_memory_mib"] is None


def test_the_default_pipeline_estimate_scales_each_stage_by_what_it_depends_on():
    """Issue 37: the whole default pipeline on the check's GPU, from the check's measured stage times and rates."""
    from gpu_check import pipeline_estimate

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    check = yaml.safe_load((ROOT / "configs/gpu-check.yaml").read_text())
    check = {k: params.get(k, {}) | v if isinstance(v, dict) else v for k, v in check.items()} | \
        {k: v for k, v in params.items() if k not in check}
    stages = {"finetune@full": 60.0, "finetune@lora_toxic": 50.0, "baseline": 40.0, "evaluate@full": 10.0,
              "detoxify": 20.0, "tokenize": 2.0, "report": 3.0}
    training = {"full": {"step_samples_per_s": 100.0}, "lora": {"step_samples_per_s": 125.0}}
    est = pipeline_estimate(stages, training, check, params)["stages_s"]
    # 12,460 examples x 1 epoch at 100 samples/s, and 500 validation rows once at 300/s
    assert est["finetune@full"] == pytest.approx(124.6 + 500 / 300, abs=0.1)
    assert est["finetune@lora_toxic"] == pytest.approx(12460 / 125 + 500 / 375, abs=0.1)
    # baseline: 100 -> 500 dialogues; 2 strategies x (greedy + beam4 = 5) -> 5 strategies x (4 + beam4 = 8)
    assert est["baseline"] == pytest.approx(40 * 5 * (5 * 8) / (2 * 5))
    assert est["evaluate@full"] == pytest.approx(50.0)
    assert est["detoxify"] == pytest.approx(20 * 10 / 4)
    assert est["tokenize"] == pytest.approx(2 * 12460 / 2000, abs=0.05) and est["report"] == 3.0
