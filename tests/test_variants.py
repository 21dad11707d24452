"""Every saved variant is what was trained, and no two variants are the same model.

Each method trains a few steps; a callback records the trained model's logits on a fixed batch at the end of
training. Loaded back the way the evaluate stage loads it with ``generation.backend: transformers``
(``load_summarizer(out, base)``; tests/test_ct2.py holds each CTranslate2 conversion to these models), each variant
must give those logits again — an adapter that is not loaded, merged twice or saved empty would not — and logits
that differ from base's and from every other variant's.
"""

import dataclasses

import pytest
import torch
from transformers import TrainerCallback

from helpers import tiny_params
from summarizer.config import METHODS, parse_params
from summarizer.device import Runtime
from summarizer.io import read_jsonl
from summarizer.modeling import build_tiny_t5, load_summarizer, load_tokenizer
from summarizer.ppo import load_policy, make_trainer, run_ppo, save_policy, select_prompts
from summarizer.training import TrainRequest, train

CPU = Runtime("cpu", "fp32")


class _LogitsAtTheEnd(TrainerCallback):
    """The logits of the model the Trainer holds when training ends (before anything is saved)."""

    def __init__(self, batch):
        self.batch, self.logits = batch, None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        was_training = model.training
        model.eval()
        with torch.no_grad():
            self.logits = model(**self.batch).logits.detach().clone()
        model.train(was_training)


def _logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


@pytest.fixture(scope="module")
def trained(tiny_workspace, tmp_path_factory):
    """base, full, lora, prompt_tuning and ppo trained a few steps from a base whose outputs depend on its weights;
    for each, the saved folder and the logits the trained model gave on the fixed batch."""
    raw = tiny_params()
    for method in METHODS:
        raw[method].update(max_steps=3, batch_size=4)
    raw["lora"]["lr"] = raw["prompt_tuning"]["lr"] = 1e-2
    raw["ppo"].update(steps=2, batch_size=4, mini_batch_size=2, min_new_tokens=4, max_new_tokens=8, lr=1e-3,
                      prompt_min_chars=100)
    cfg = parse_params(raw)
    tmp = tmp_path_factory.mktemp("variants")
    tok = load_tokenizer(tiny_workspace / "models/base")
    base = build_tiny_t5(dataclasses.replace(cfg.model.tiny, initializer_factor=0.5), tok, seed=3)
    base_dir = tmp / "base"
    base.save_pretrained(base_dir)
    tok.save_pretrained(base_dir)
    rows = read_jsonl(tiny_workspace / "data/tokenized/validation.jsonl")[:2]
    width = max(len(r["input_ids"]) for r in rows)
    batch = {"input_ids": torch.tensor([r["input_ids"] + [0] * (width - len(r["input_ids"])) for r in rows]),
             "attention_mask": torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"]))
                                             for r in rows]),
             "decoder_input_ids": torch.tensor([[0, 5, 6, 7]] * len(rows))}
    out = {"base": (base_dir, _logits(load_summarizer(base_dir), batch))}
    for method in METHODS:
        probe = _LogitsAtTheEnd(batch)
        request = TrainRequest(method=method, lr=cfg.method_lr(method), hp=cfg.method(method), shared=cfg.training,
                               seed=cfg.seed)
        train(request, base_dir=base_dir, features_dir=tiny_workspace / "data/tokenized", out_dir=tmp / method,
              checkpoint_dir=tmp / f"ckpt_{method}", live_dir=tmp / f"live_{method}", runtime=CPU,
              callbacks=[probe])
        out[method] = (tmp / method, probe.logits)

    torch.manual_seed(0)
    policy = load_policy(base_dir, tmp / "lora")
    trainer = make_trainer(policy, tok, cfg.ppo, CPU, cfg.seed)
    prompts = select_prompts(read_jsonl(tiny_workspace / "data/prepared/train.jsonl"), cfg.prompt.template, 100,
                             1000, cfg.seed)

    def reward(texts):  # short summaries: a signal PPO can follow in two steps
        return [-len(t) / 10 for t in texts]

    run_ppo(trainer, prompts, reward, cfg.ppo, max_source_tokens=512, seed=cfg.seed, device="cpu", progress=False)
    policy.eval()
    out["ppo"] = (tmp / "ppo", _logits(policy.pretrained_model, batch))
    save_policy(policy, tok, tmp / "ppo")
    return out, batch, base_dir


@pytest.mark.parametrize("variant", ["base", *METHODS, "ppo"])
def test_saved_variant_is_the_trained_model(trained, variant):
    out, batch, base_dir = trained
    folder, expected = out[variant]
    loaded = load_summarizer(folder, base_dir)  # as stages/evaluate.py loads it with backend transformers
    # Merging adapters into the weights (ppo) rounds differently from applying them: a small tolerance.
    torch.testing.assert_close(_logits(loaded, batch), expected, rtol=1e-4, atol=1e-4)


def test_no_two_variants_are_the_same_model(trained):
    out, batch, base_dir = trained
    logits = {v: _logits(load_summarizer(folder, base_dir), batch) for v, (folder, _) in out.items()}
    names = list(logits)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            gap = (logits[a] - logits[b]).abs().max().item()
            assert gap > 1e-3, f"{a} and {b} give the same logits (largest difference {gap:.2e})"
