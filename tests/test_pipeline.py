"""End to end: the demo runs `dvc repro` on tiny models in its own workspace and leaves the project untouched."""

import hashlib
import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from summarizer.io import read_json


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo") / "ws"
    before = {name: _digest(ROOT / name) for name in ("params.yaml", "dvc.lock")}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/demo.py"), "--workspace", str(work)],
                          capture_output=True, text=True, timeout=1200, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = {name: _digest(ROOT / name) for name in ("params.yaml", "dvc.lock")}
    return work, proc, before, after


def test_demo_leaves_project_untouched(demo):
    _, _, before, after = demo
    assert before == after


def test_demo_says_scores_are_meaningless(demo):
    _, proc, _, _ = demo
    assert proc.stdout.count("MEANINGLESS") >= 2


def test_demo_runs_every_stage(demo):
    work, _, _, _ = demo
    assert read_json(work / "metrics/data.json")["rows"] == {"train": 30, "validation": 6, "test": 18}
    assert read_json(work / "metrics/models/base.json")["source"] == "tiny-random"
    assert (work / "data/tokenized/train.jsonl").exists()
    assert (work / "dvc.lock").exists()


def test_second_repro_runs_nothing(demo):
    work, _, _, _ = demo
    proc = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=work, capture_output=True, text=True,
                          env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0
    assert "up to date" in proc.stdout, proc.stdout


def test_every_variant_is_evaluated_and_compared(demo):
    work, _, _, _ = demo
    for variant in ("base", "full", "lora", "prompt_tuning", "ppo"):
        assert read_json(work / f"metrics/eval/{variant}.json")["variant"] == variant
    comparison = read_json(work / "metrics/eval/comparison.json")
    assert comparison["reference"] == "base"
    assert set(comparison) == {"reference", "full", "lora", "prompt_tuning", "ppo"}
    assert comparison["full"]["per_reference"]["rouge1"]["p_value"] <= 1


def test_ppo_before_after(demo):
    work, _, _, _ = demo
    ppo = read_json(work / "metrics/ppo.json")
    assert ppo["before"]["variant"] == "lora" and ppo["after"]["variant"] == "ppo"
    assert ppo["n_dialogues"] == 6 and ppo["enough_dialogues"] is False  # the sample has 6 test dialogues
    for side in ("before", "after"):
        tox = ppo[side]["toxicity"]["mean"]
        assert 0 <= tox["ci_low"] <= tox["mean"] <= tox["ci_high"] <= 1
    assert {"difference", "ci_low", "ci_high", "p_value"} == set(ppo["difference"]["toxicity"])
    train = read_json(work / "metrics/train/ppo.json")
    assert train["steps"] == 2 and (work / "models/ppo/model.safetensors").exists()  # LoRA + PPO merged
    assert abs(train["kl_first"]) < 1e-3, "before the first update the policy is the LoRA summarizer"
    assert (work / "dvclive/ppo/plots/metrics/ppo/reward_mean.tsv").exists()


def test_ppo_params_rerun_only_the_detox_chain(demo):
    work, _, _, _ = demo
    proc = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=work, capture_output=True,
                          text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert proc.stdout.strip() in ("{}", ""), proc.stdout
    params = (work / "params.yaml").read_text()
    (work / "params.yaml").write_text(_set_ppo_lr(params))
    try:
        proc = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=work, capture_output=True,
                              text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
        assert set(json.loads(proc.stdout)) == {"detoxify"}  # evaluate@ppo and compare follow from its output
    finally:
        (work / "params.yaml").write_text(params)


def _set_ppo_lr(text):
    doc = yaml.safe_load(text)
    doc["ppo"]["lr"] = 2.0e-5
    return yaml.safe_dump(doc, sort_keys=False)


def test_every_method_trained_its_steps(demo):
    work, _, _, _ = demo
    overrides = yaml.safe_load((ROOT / "demo/params-overrides.yaml").read_text())
    for method in ("full", "lora", "prompt_tuning"):
        assert read_json(work / f"metrics/train/{method}.json")["steps"] == overrides[method]["max_steps"]
        assert (work / f"dvclive/{method}/plots/metrics/loss.tsv").exists()


FIGURES = ("rouge_by_variant", "baseline_heatmap", "loss_curves", "toxicity_before_after", "length_box",
           "length_scatter", "error_categories")


def test_report_figures_table_and_errors(demo):
    work, _, _, _ = demo
    for name in FIGURES:
        png = work / f"plots/{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert (work / f"plots/data/{name}.csv").stat().st_size > 20
    table = (work / "metrics/README.md").read_text()
    assert "Generated by the `report` stage" in table and "meaningless" in table
    for variant in ("base", "full", "lora", "prompt_tuning", "ppo"):
        assert f"| {variant} |" in table
        assert (work / f"data/report/worst/{variant}.csv").exists()
    errors = read_json(work / "metrics/errors.json")
    assert set(errors["base"]) == {"empty", "length_issue", "missing_key_info", "hallucinated_entity",
                                   "speaker_confusion"}


def test_lr_sweep_reruns_only_the_full_chain(demo):
    """`dvc exp run -S lr=5e-4` exactly as users type it: only finetune@full, evaluate@full and the aggregates."""
    work, _, _, _ = demo
    proc = subprocess.run([sys.executable, "-m", "dvc", "exp", "run", "-S", "lr=5e-4"], cwd=work,
                          capture_output=True, text=True, timeout=900, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ran = {line.split("'")[1] for line in proc.stdout.splitlines() if line.startswith("Running stage")}
    # the aggregates rerun only if full's outputs changed (a random tiny model may predict the same text)
    assert {"finetune@full", "evaluate@full"} <= ran <= {"finetune@full", "evaluate@full", "compare", "report"}, ran
    assert read_json(work / "metrics/train/full.json")["learning_rate"] == 5e-4


def test_interrupted_dvc_repro_resumes_with_its_whole_curve(demo):
    """Ctrl+C during `dvc repro`, then `dvc repro` again: training resumes from its last checkpoint and the loss
    curve keeps its start (DVC deletes non-persistent outputs before rerunning a stage). Runs last: it leaves the
    demo workspace's lora params changed."""
    import signal
    import time

    work, _, _, _ = demo
    doc = yaml.safe_load((work / "params.yaml").read_text())
    doc["lora"]["max_steps"] = 400
    doc["training"].update(save_steps=10, eval_steps=100, logging_steps=5)
    (work / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", "finetune@lora"]
    first = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + 300
    while not (work / "checkpoints/lora/checkpoint-20").is_dir():  # checkpoint-10 is complete by then
        assert first.poll() is None, "the stage ended before it could be interrupted: " + first.stdout.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGINT)
    first.wait(timeout=120)
    assert first.returncode != 0 and not (work / "models/lora").exists()
    # Ctrl+C may land while a checkpoint is being written: resume takes the newest complete one
    interrupted_at = max(int(p.name.split("-")[1]) for p in (work / "checkpoints/lora").glob("checkpoint-*")
                         if (p / "trainer_state.json").exists())
    assert interrupted_at < 400

    second = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    metrics = read_json(work / "metrics/train/lora.json")
    assert metrics["resumed_from_step"] == interrupted_at and metrics["steps"] == 400
    steps = [int(line.split("\t")[0]) for line in
             (work / "dvclive/lora/plots/metrics/loss.tsv").read_text().splitlines()[1:]]
    assert steps == [1, *range(5, 401, 5)], "one point per logged step, from the first: " + str(steps[:12])
    assert not (work / "checkpoints/lora").exists()
