"""CUDA checks on the tiny models (skipped without a GPU; CI has none): bf16 training of each method, batched
generation, two PPO steps and toxicity scoring, each on the GPU it was given; the stage scripts themselves with the
GPU pinning they do (training in one process, no DataParallel; evaluation of an adapter and of the PPO model in
bf16); the KL reference with an adapter that changes the model; two processes on two GPUs where there are two.

Run on a GPU machine with `HF_HUB_OFFLINE=1 python -m pytest -m gpu tests/test_gpu.py`.
"""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from helpers import ROOT, perturbed_lora_adapter, tiny_params, write_params
from summarizer.config import parse_params

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def runtime():
    from summarizer.device import select_runtime

    return select_runtime("cuda", "bf16", deterministic=True)


@pytest.fixture(scope="module")
def cfg():
    raw = tiny_params()
    raw.update(device="cuda", precision="bf16")
    raw["ppo"].update(steps=2, batch_size=4, mini_batch_size=2, min_new_tokens=4, max_new_tokens=10,
                      prompt_min_chars=100)
    return parse_params(raw)


@pytest.mark.parametrize("method", ["full", "lora", "prompt_tuning"])
def test_training_steps_in_bf16(tiny_workspace, tmp_path, cfg, runtime, method):
    import dataclasses

    from summarizer.training import TrainRequest, train

    hp = cfg.method(method)
    request = TrainRequest(method=method, lr=cfg.method_lr(method), hp=dataclasses.replace(hp, max_steps=3),
                           shared=cfg.training, seed=cfg.seed)
    summary = train(request, base_dir=tiny_workspace / "models/base", features_dir=tiny_workspace / "data/tokenized",
                    out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", live_dir=tmp_path / "live",
                    runtime=runtime)
    assert summary["steps"] == 3 and summary["device"] == "cuda:0" and summary["precision"] == "bf16"
    assert math.isfinite(summary["train_loss_first"]) and math.isfinite(summary["eval_loss"])


def test_batched_generation_on_cuda(tiny_workspace, cfg, runtime):
    from summarizer.generation import generate_batched
    from summarizer.io import read_jsonl
    from summarizer.modeling import load_summarizer, load_tokenizer

    model = load_summarizer(tiny_workspace / "models/base", device=runtime.device, dtype=runtime.torch_dtype)
    assert next(model.parameters()).device.type == "cuda"
    tok = load_tokenizer(tiny_workspace / "models/base")
    prompts = [r["dialogue"] for r in read_jsonl(tiny_workspace / "data/prepared/test.jsonl")]
    out = generate_batched(model, tok, prompts, cfg.generation, batch_size=64, max_source_tokens=512,
                           progress=False)
    assert len(out) == len(prompts)


def test_two_ppo_steps_and_toxicity_on_cuda(tiny_workspace, tmp_path, cfg, runtime):
    from summarizer.io import read_jsonl
    from summarizer.modeling import load_summarizer, load_tokenizer
    from summarizer.ppo import load_policy, make_trainer, run_ppo, select_prompts
    from summarizer.toxicity import load_toxicity_scorer
    from summarizer.training import wrap_model

    base = tiny_workspace / "models/base"
    wrap_model(load_summarizer(base), "lora", cfg.lora, ".").save_pretrained(tmp_path / "lora")
    tokenizer = load_tokenizer(base)
    trainer = make_trainer(load_policy(base, tmp_path / "lora"), tokenizer, cfg.ppo, runtime, cfg.seed)
    assert trainer.current_device.type == "cuda" and trainer.accelerator.mixed_precision == "bf16"
    scorer = load_toxicity_scorer(tiny_workspace / "models/classifier", cfg.classifier, device=runtime.device)
    prompts = select_prompts(read_jsonl(tiny_workspace / "data/prepared/train.jsonl"), cfg.prompt.template, 100,
                             1000, cfg.seed)
    history = run_ppo(trainer, prompts, scorer.reward, cfg.ppo, max_source_tokens=512, seed=cfg.seed,
                      device=runtime.device, progress=False)
    assert len(history) == 2 and all(math.isfinite(h["kl"]) for h in history)
    assert abs(history[0]["kl"]) < 1e-2  # the reference is the starting policy (bf16 autocast rounding aside)
    tox = scorer.toxic_probability(["a calm summary", "another one"])
    assert tox.shape == (2,) and ((0 <= tox) & (tox <= 1)).all()


def _sft_adapter(base, cfg, folder):
    return perturbed_lora_adapter(base, cfg.lora, folder)


def _stage(script, params, *args, env=None):
    """A stage script in its own process, as dvc repro runs it (the pinning happens before CUDA starts there)."""
    proc = subprocess.run([sys.executable, str(ROOT / "stages" / script), "--params", str(params), *map(str, args)],
                          capture_output=True, text=True, timeout=900,
                          env=(env or os.environ) | {"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _gpu_params(tmp_path, **generation):
    raw = tiny_params()
    raw.update(device="cuda", precision="bf16")
    raw["lora"]["max_steps"] = 3
    raw["generation"].update(generation)
    return write_params(tmp_path / "params.yaml", raw)


def test_finetune_stage_trains_in_one_process_on_the_pinned_gpu(tiny_workspace, tmp_path):
    """The stage hides the other GPUs before CUDA starts: the Trainer sees one GPU, so no DataParallel, and the
    steps are the ones asked for (DataParallel over N GPUs would change the batch)."""
    params = _gpu_params(tmp_path)
    ws = tiny_workspace
    _stage("finetune.py", params, "--method", "lora", "--base-model", ws / "models/base", "--features",
           ws / "data/tokenized", "--out", tmp_path / "lora", "--checkpoints", tmp_path / "ckpt", "--live",
           tmp_path / "live", "--metrics", tmp_path / "lora.json")
    summary = json.loads((tmp_path / "lora.json").read_text())
    assert summary["steps"] == 3 and summary["processes"] == 1
    assert summary["device"] == "cuda:0" and summary["precision"] == "bf16"


def test_evaluate_stage_in_bf16_for_an_adapter_and_a_merged_model(tiny_workspace, tmp_path):
    """evaluate on CUDA in bf16, as dvc repro runs it, for a LoRA adapter and for a whole (PPO-like) model."""
    from summarizer.modeling import load_summarizer

    ws, cfg = tiny_workspace, parse_params(tiny_params())
    adapter = _sft_adapter(ws / "models/base", cfg, tmp_path / "lora")
    load_summarizer(adapter, ws / "models/base").merge_and_unload().save_pretrained(tmp_path / "merged")
    params = _gpu_params(tmp_path)
    for name, model in (("lora", adapter), ("merged", tmp_path / "merged")):
        _stage("evaluate.py", params, "--variant", name, "--model", model, "--base-model", ws / "models/base",
               "--classifier", ws / "models/classifier", "--test", ws / "data/prepared/test.jsonl",
               "--out", tmp_path / f"{name}.jsonl", "--metrics", tmp_path / f"{name}.json")
        metrics = json.loads((tmp_path / f"{name}.json").read_text())
        assert metrics["generation"]["backend"] == "transformers"  # auto on CUDA
        assert 0 <= metrics["toxicity"]["mean"]["mean"] <= 1


def test_kl_reference_is_the_tuned_model_on_cuda(tiny_workspace, tmp_path, cfg, runtime):
    """With an adapter that changes the model (not an untrained one, for which any reference gives KL 0), the KL
    before the first update is ~0 only if the reference is the LoRA model itself."""
    from summarizer.io import read_jsonl
    from summarizer.modeling import load_summarizer, load_tokenizer
    from summarizer.ppo import load_policy, make_trainer, run_ppo, select_prompts

    base = tiny_workspace / "models/base"
    adapter = _sft_adapter(base, cfg, tmp_path / "lora")
    ids = torch.tensor([[5, 6, 7, 8, 1]])
    start = torch.zeros((1, 1), dtype=torch.long)
    with torch.no_grad():
        moved = (load_summarizer(adapter, base)(input_ids=ids, decoder_input_ids=start).logits
                 - load_summarizer(base)(input_ids=ids, decoder_input_ids=start).logits).abs().max()
    assert moved > 0.1, "the adapter must change the model for this test to mean anything"
    trainer = make_trainer(load_policy(base, adapter), load_tokenizer(base), cfg.ppo, runtime, cfg.seed)
    prompts = select_prompts(read_jsonl(tiny_workspace / "data/prepared/train.jsonl"), cfg.prompt.template, 100,
                             1000, cfg.seed)
    history = run_ppo(trainer, prompts, lambda texts: [0.0] * len(texts), cfg.ppo, max_source_tokens=512,
                      seed=cfg.seed, device=runtime.device, progress=False)
    assert abs(history[0]["kl"]) < 1e-2


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_processes_on_two_gpus_agree_with_one(tiny_workspace, tmp_path):
    """generation.num_processes 2 on two GPUs: the greedy summaries of one process, in bf16 (a near-tie may flip:
    the share that agrees is printed, and at least 90% must)."""
    ws = tiny_workspace
    outputs = {}
    for n in (1, 2):
        (tmp_path / f"p{n}").mkdir()
        params = _gpu_params(tmp_path / f"p{n}", num_processes=n)
        _stage("evaluate.py", params, "--variant", "base", "--model", ws / "models/base", "--base-model",
               ws / "models/base", "--classifier", ws / "models/classifier", "--test",
               ws / "data/prepared/test.jsonl", "--out", tmp_path / f"{n}.jsonl", "--metrics", tmp_path / f"{n}.json")
        outputs[n] = [json.loads(line)["prediction"] for line in (tmp_path / f"{n}.jsonl").read_text().splitlines()]
    same = sum(a == b for a, b in zip(outputs[1], outputs[2])) / len(outputs[1])
    print(f"greedy outputs identical with 1 and 2 processes: {same:.0%}")
    assert same >= 0.9
