"""CUDA checks on the tiny models (skipped without a GPU; CI has none): bf16 training of each method, batched
generation, two PPO steps and toxicity scoring, each on the GPU it was given.

Run on a GPU machine with `HF_HUB_OFFLINE=1 python -m pytest -m gpu tests/test_gpu.py`.
"""

import math

import pytest
import torch

from helpers import tiny_params
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
    from summarizer.generation import build_generation_config, generate_batched
    from summarizer.io import read_jsonl
    from summarizer.modeling import load_summarizer, load_tokenizer

    model = load_summarizer(tiny_workspace / "models/base", device=runtime.device, dtype=runtime.torch_dtype)
    assert next(model.parameters()).device.type == "cuda"
    tok = load_tokenizer(tiny_workspace / "models/base")
    prompts = [r["dialogue"] for r in read_jsonl(tiny_workspace / "data/prepared/test.jsonl")]
    out = generate_batched(model, tok, prompts, build_generation_config(cfg.generation, model.config),
                           batch_size=64, max_source_tokens=512, progress=False)
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
