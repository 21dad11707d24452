"""Guards the pinned trl 0.11.4: two PPO steps on the tiny models really train the adapter and nothing else."""

import math

import pytest
import torch

from conftest import tiny_params
from summarizer.config import parse_config
from summarizer.io import read_jsonl
from summarizer.modeling import load_classifier, load_summarizer, load_tokenizer
from summarizer.ppo import load_policy, run_ppo, save_adapter, select_prompts
from summarizer.toxicity import ToxicityScorer
from summarizer.training import wrap_model


@pytest.fixture(scope="module")
def setup(tiny_workspace, tmp_path_factory):
    raw = tiny_params()
    raw["ppo"].update(steps=2, batch_size=4, mini_batch_size=2, min_new_tokens=4, max_new_tokens=10,
                      prompt_min_chars=100)
    cfg = parse_config(raw, check_device=False)
    adapter = tmp_path_factory.mktemp("lora") / "lora"
    wrap_model(load_summarizer(tiny_workspace / "models/base"), "lora", cfg.lora, ".").save_pretrained(adapter)
    return cfg, adapter


def test_select_prompts_filters_and_shuffles_by_seed():
    rows = [{"dialogue": "x" * n} for n in (150, 200, 201, 1000, 1001, 500)]
    a = select_prompts(rows, "<{dialogue}>", 200, 1000, seed=1)
    assert sorted(len(p) - 2 for p in a) == [201, 500, 1000]
    assert a == select_prompts(rows, "<{dialogue}>", 200, 1000, seed=1)


def test_two_ppo_steps(tiny_workspace, setup, tmp_path):
    cfg, adapter = setup
    ws = tiny_workspace
    torch.manual_seed(0)
    tokenizer = load_tokenizer(ws / "models/base")
    policy, reference = load_policy(ws / "models/base", adapter, "cpu")
    classifier, cls_tok = load_classifier(ws / "models/classifier")
    c = cfg.classifier
    scorer = ToxicityScorer(classifier, cls_tok, toxic_label=c.toxic_label, nontoxic_label=c.nontoxic_label,
                            max_tokens=c.max_tokens, batch_size=c.batch_size)
    prompts = select_prompts(read_jsonl(ws / "data/prepared/train.jsonl"), cfg.prompt.template, 100, 1000, cfg.seed)

    lora_before = {n: p.detach().clone() for n, p in policy.named_parameters() if "lora_" in n}
    ref_before = {n: p.detach().clone() for n, p in reference.named_parameters()}
    base_before = {n: p.detach().clone() for n, p in policy.named_parameters()
                   if "lora_" not in n and "v_head" not in n}
    assert lora_before and all(not p.requires_grad for p in reference.parameters())

    history = run_ppo(policy, reference, tokenizer, prompts, scorer.reward, cfg.ppo, max_source_tokens=512,
                      seed=cfg.seed, progress=False)

    assert len(history) == 2
    for row in history:
        assert math.isfinite(row["kl"]) and math.isfinite(row["reward_mean"])
        assert math.isfinite(row["policy_loss"]) and math.isfinite(row["value_loss"])
        assert 1 <= row["response_tokens_mean"] <= cfg.ppo.max_new_tokens + 1
    lora_after = dict(policy.named_parameters())
    changed = [n for n in lora_before if not torch.equal(lora_before[n], lora_after[n])]
    assert changed, "PPO must update the LoRA adapter"
    assert all(torch.equal(p, ref_before[n]) for n, p in reference.named_parameters()), "the reference is frozen"
    assert all(torch.equal(p, base_before[n]) for n, p in policy.named_parameters() if n in base_before), \
        "only the adapter (and value head) train"

    save_adapter(policy, tmp_path / "ppo")
    assert (tmp_path / "ppo/adapter_model.safetensors").exists()
    reloaded = load_summarizer(tmp_path / "ppo", ws / "models/base")
    saved = {n: p for n, p in reloaded.named_parameters() if "lora_" in n}
    assert saved and not any("v_head" in n for n, _ in reloaded.named_parameters())
    name = changed[0].replace("pretrained_model.", "")
    assert torch.equal(dict(reloaded.named_parameters())[name], lora_after[changed[0]].detach())
