"""Fine-tuning: parameter counts, resume after an interruption, and prompt tuning that really changes outputs."""

import dataclasses

import pytest
import torch

from conftest import tiny_params
from summarizer.config import parse_config
from summarizer.device import Runtime
from summarizer.io import read_json
from summarizer.training import TrainRequest, train, wrap_model

CPU = Runtime("cpu", "fp32")


def _cfg(**method_overrides):
    raw = tiny_params()
    raw["training"].update(logging_steps=1, eval_steps=2, save_steps=2, save_total_limit=3)
    for method, over in method_overrides.items():
        raw[method].update(over)
    return parse_config(raw, check_device=False)


def _request(cfg, method):
    return TrainRequest(method=method, lr=cfg.method_lr(method), hp=cfg.method(method), shared=cfg.training,
                        seed=cfg.seed)


def test_lora_parameter_count_of_flan_t5_base():
    """r=32 on q and v of FLAN-T5-base's architecture: 3,538,944 of 251,116,800 parameters (1.41%)."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=32128, d_model=768, d_ff=2048, d_kv=64, num_layers=12, num_decoder_layers=12,
                      num_heads=12, feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    with torch.device("meta"):  # shapes only: no 1 GB of random weights
        model = T5ForConditionalGeneration(config)
        # transformers 5 ties a new T5's head to its embeddings; the FLAN-T5 checkpoint has its own lm_head
        # (from_pretrained keeps it untied), so give the shape-only model one too.
        model.lm_head.weight = torch.nn.Parameter(torch.empty(32128, 768))
        base_total = sum(p.numel() for p in model.parameters())
        peft = wrap_model(model, "lora", _cfg().lora, tokenizer_path=".")
    trainable = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft.parameters())
    assert base_total == 247_577_856
    assert (trainable, total) == (3_538_944, 251_116_800)
    assert round(100 * trainable / total, 2) == 1.41


def test_interrupt_and_resume(tiny_workspace, tmp_path):
    cfg = _cfg(lora={"max_steps": 4})
    kwargs = dict(base_dir=tiny_workspace / "models/base", features_dir=tiny_workspace / "data/tokenized",
                  out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", live_dir=tmp_path / "live",
                  runtime=CPU)
    first = train(_request(cfg, "lora"), stop_after_steps=2, **kwargs)
    assert first == {"interrupted_at_step": 2}
    assert (tmp_path / "ckpt/checkpoint-2").is_dir() and not (tmp_path / "out").exists()

    second = train(_request(cfg, "lora"), **kwargs)
    assert second["resumed_from_step"] == 2 and second["steps"] == 4
    assert (tmp_path / "out/adapter_model.safetensors").exists()
    assert not (tmp_path / "ckpt").exists(), "a finished run leaves only its final outputs"
    steps = [int(l.split("\t")[0]) for l in (tmp_path / "live/plots/metrics/loss.tsv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4], "the curve continues across the interruption"


def test_checkpoint_of_other_settings_is_not_resumed(tiny_workspace, tmp_path):
    kwargs = dict(base_dir=tiny_workspace / "models/base", features_dir=tiny_workspace / "data/tokenized",
                  out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", live_dir=tmp_path / "live",
                  runtime=CPU)
    train(_request(_cfg(lora={"max_steps": 4}), "lora"), stop_after_steps=2, **kwargs)
    other = train(_request(_cfg(lora={"max_steps": 4, "lr": 5e-3}), "lora"), **kwargs)
    assert other["resumed_from_step"] == 0 and other["steps"] == 4


def test_prompt_tuning_changes_generation(tiny_workspace, tmp_path):
    """The virtual tokens must reach generate(): a published FLAN-T5 prefix-tuning adapter scored exactly like the
    untuned model because they never did."""
    from summarizer.generation import build_generation_config, generate_batched
    from summarizer.io import read_jsonl
    from summarizer.modeling import build_tiny_t5, load_summarizer, load_tokenizer

    cfg = _cfg(prompt_tuning={"max_steps": 4, "lr": 1.0, "num_virtual_tokens": 8})
    tok = load_tokenizer(tiny_workspace / "models/base")
    # A base whose greedy output depends on its input (the demo's small-init model emits near-constant text).
    lively = build_tiny_t5(dataclasses.replace(cfg.model.tiny, initializer_factor=5.0), tok, seed=3)
    base_dir = tmp_path / "base"
    lively.save_pretrained(base_dir)
    tok.save_pretrained(base_dir)
    summary = train(_request(cfg, "prompt_tuning"), base_dir=base_dir,
                    features_dir=tiny_workspace / "data/tokenized", out_dir=tmp_path / "pt",
                    checkpoint_dir=tmp_path / "ckpt", live_dir=tmp_path / "live", runtime=CPU)
    # peft keeps num_virtual_tokens embeddings per transformer stack of a seq2seq model (encoder and decoder)
    assert summary["trainable_parameters"] == 2 * 8 * cfg.model.tiny.d_model

    prompts = [r["dialogue"] for r in read_jsonl(tiny_workspace / "data/prepared/test.jsonl")][::3]
    gen = build_generation_config(dataclasses.replace(cfg.generation, max_new_tokens=16), lively.config)

    def outputs(model):
        return generate_batched(model, tok, prompts, gen, batch_size=4, max_source_tokens=512, progress=False)

    base_out = outputs(load_summarizer(base_dir))
    tuned = load_summarizer(tmp_path / "pt", base_dir)
    tuned_out = outputs(tuned)
    assert sum(a != b for a, b in zip(base_out, tuned_out)) >= len(prompts) // 2
    # ... and training moved the prompt away from its text initialisation.
    fresh = wrap_model(load_summarizer(base_dir), "prompt_tuning", cfg.prompt_tuning, base_dir)
    start = fresh.get_prompt_embedding_to_save("default")
    trained = tuned.get_prompt_embedding_to_save("default")
    assert start.shape == trained.shape and not torch.allclose(start, trained)


def test_finetune_stage_writes_metrics(tiny_workspace, tmp_path):
    from conftest import write_params
    from stages import finetune

    raw = tiny_params()
    raw["full"]["max_steps"] = 2
    p = str(write_params(tmp_path / "params.yaml", raw))
    finetune.main(["--params", p, "--method", "full", "--base-model", str(tiny_workspace / "models/base"),
                   "--features", str(tiny_workspace / "data/tokenized"), "--out", str(tmp_path / "full"),
                   "--checkpoints", str(tmp_path / "ckpt"), "--live", str(tmp_path / "live"),
                   "--metrics", str(tmp_path / "full.json")])
    m = read_json(tmp_path / "full.json")
    assert m["method"] == "full" and m["learning_rate"] == pytest.approx(raw["lr"]) and m["steps"] == 2
    assert m["trainable_parameters"] == m["total_parameters"]
    assert (tmp_path / "full/model.safetensors").exists() and not (tmp_path / "full/training_args.bin").exists()
