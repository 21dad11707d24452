"""Fine-tuning: parameter counts, the loss it logs, resume after an interruption, optimizers, weights in fp32, and
prompt tuning that really changes outputs."""

import dataclasses
import time
import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import TrainerCallback

from helpers import ROOT, tiny_params, write_params
from summarizer.config import parse_params
from summarizer.device import Runtime
from summarizer.io import read_json, read_jsonl, write_jsonl
from summarizer.modeling import build_tiny_t5, load_summarizer, load_tokenizer
from summarizer.training import TrainRequest, train, wrap_model

CPU = Runtime("cpu", "fp32")


def _cfg(**method_overrides):
    raw = tiny_params()
    raw["training"].update(logging_steps=1, eval_steps=2, save_steps=2, save_total_limit=3)
    for method, over in method_overrides.items():
        raw[method].update(over)
    return parse_params(raw)


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


class InterruptAfterSave(TrainerCallback):
    """Ctrl+C right after the checkpoint of ``step`` is written, as a user interrupting a long run would."""

    def __init__(self, step):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            raise KeyboardInterrupt


def _steps(tsv):
    return [int(line.split("\t")[0]) for line in tsv.read_text().splitlines()[1:]]


def test_interrupt_and_resume(tiny_workspace, tmp_path):
    cfg = _cfg(lora={"max_steps": 4, "lr": 0.3})  # a rate that moves the loss from step to step
    kwargs = dict(base_dir=tiny_workspace / "models/base", features_dir=tiny_workspace / "data/tokenized",
                  out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", live_dir=tmp_path / "live",
                  runtime=CPU)
    with pytest.raises(KeyboardInterrupt):
        train(_request(cfg, "lora"), callbacks=[InterruptAfterSave(2)], **kwargs)
    assert (tmp_path / "ckpt/checkpoint-2").is_dir() and not (tmp_path / "out").exists()

    (tmp_path / "ckpt/checkpoint-3").mkdir()  # interrupted while saving: no trainer_state.json yet
    (tmp_path / "ckpt/checkpoint-3/model.safetensors").write_bytes(b"partial")

    second = train(_request(cfg, "lora"), **kwargs)
    assert second["resumed_from_step"] == 2 and second["steps"] == 4
    assert (tmp_path / "out/adapter_model.safetensors").exists()
    assert not (tmp_path / "ckpt").exists(), "a finished run leaves only its final outputs"
    assert _steps(tmp_path / "live/plots/metrics/loss.tsv") == [1, 2, 3, 4], "the curve continues"
    # the mean training loss covers all 4 steps (logged every step here), not only the 2 after the resume
    logged = [float(line.split("\t")[-1]) for line in
              (tmp_path / "live/plots/metrics/loss.tsv").read_text().splitlines()[1:]]
    assert second["train_loss_mean"] == pytest.approx(sum(logged) / 4, abs=2e-4)
    assert abs(second["train_loss_mean"] - sum(logged[2:]) / 2) > 1e-3, logged
    # validation before training (step 0: the base, not evaluated again when the run resumes) and at steps 2 and 4
    # (eval_steps=2), each once: no second point from a final evaluation
    assert _steps(tmp_path / "live/plots/metrics/eval/loss.tsv") == [0, 2, 4]


def test_checkpoint_of_other_settings_is_not_resumed(tiny_workspace, tmp_path):
    kwargs = dict(base_dir=tiny_workspace / "models/base", features_dir=tiny_workspace / "data/tokenized",
                  out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", live_dir=tmp_path / "live",
                  runtime=CPU)
    with pytest.raises(KeyboardInterrupt):
        train(_request(_cfg(lora={"max_steps": 4}), "lora"), callbacks=[InterruptAfterSave(2)], **kwargs)
    other = train(_request(_cfg(lora={"max_steps": 4, "lr": 5e-3}), "lora"), **kwargs)
    assert other["resumed_from_step"] == 0 and other["steps"] == 4


def test_prompt_tuning_changes_generation(tiny_workspace, tmp_path):
    """The virtual tokens must reach generate(): a published FLAN-T5 prefix-tuning adapter scored exactly like the
    untuned model because they never did."""
    from summarizer.generation import generate_batched
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
    # num_virtual_tokens embeddings before the encoder input, and nothing else (peft's seq2seq default allocated a
    # second, never-used block that counted as trainable)
    assert summary["trainable_parameters"] == 8 * cfg.model.tiny.d_model

    prompts = [r["dialogue"] for r in read_jsonl(tiny_workspace / "data/prepared/test.jsonl")][::3]
    gen = dataclasses.replace(cfg.generation, max_new_tokens=16)

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
    from helpers import write_params
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


class RecordDropout(TrainerCallback):
    """The dropout rates of the model the Trainer trains, and whether two training-mode forwards of one batch
    differ (they do exactly when some dropout is on)."""

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        self.rates = {m.p for name, m in model.named_modules()
                      if isinstance(m, torch.nn.Dropout) and "lora_dropout" not in name}  # LoRA's is lora.dropout
        batch = {k: v.to(model.device) for k, v in next(iter(train_dataloader)).items()}
        model.train()
        with torch.no_grad():
            self.varies = not torch.equal(model(**batch).logits, model(**batch).logits)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_training_dropout_rate_replaces_the_bases(tiny_workspace, tmp_path, method):
    """training.dropout_rate is the dropout the model trains with (the learning profile's 0.0: a third of a CPU
    step is drawing dropout masks); null keeps the base's own (T5's 0.1)."""
    seen = {}
    for rate in (None, 0.0):
        cfg = _cfg(**{method: {"max_steps": 1} | ({"dropout": 0.0} if method == "lora" else {})})
        request = _request(cfg, method)
        request = dataclasses.replace(request, shared=dataclasses.replace(request.shared, dropout_rate=rate))
        record = RecordDropout()
        train(request, base_dir=tiny_workspace / "models/base", features_dir=tiny_workspace / "data/tokenized",
              out_dir=tmp_path / f"{rate}/out", checkpoint_dir=tmp_path / f"{rate}/ckpt",
              live_dir=tmp_path / f"{rate}/live", runtime=CPU, callbacks=[record])
        seen[rate] = record
    assert seen[None].rates == {0.1} and seen[None].varies
    assert seen[0.0].rates == {0.0} and not seen[0.0].varies


# --------------------------------------------------------------------------------------------------------------------
# The loss that is logged is the loss that is optimised.


@pytest.fixture(scope="module")
def constant_task(tiny_workspace, tmp_path_factory):
    """A base model without dropout and a training set of one example repeated: every micro-batch has the same
    loss, so the loss the Trainer logs must equal the one computed directly, whatever the batching."""
    cfg = _cfg()
    tok = load_tokenizer(tiny_workspace / "models/base")
    model = build_tiny_t5(cfg.model.tiny, tok, seed=5)
    model.config.dropout_rate = 0.0
    model = type(model)(model.config)  # rebuilt so that the dropout modules take the new rate
    torch.manual_seed(5)
    root = tmp_path_factory.mktemp("constant")
    model.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    row = read_jsonl(tiny_workspace / "data/tokenized/train.jsonl")[0]
    for split in ("train", "validation"):
        write_jsonl(root / f"features/{split}.jsonl", [dict(row, id=f"{split}_{i}") for i in range(32)])
    with torch.no_grad():
        model.eval()
        direct = model(input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]])).loss.item()
    return root, direct


@pytest.mark.parametrize("grad_accum", [1, 2, 4])
def test_logged_loss_equals_the_loss_computed_directly(constant_task, tmp_path, grad_accum):
    """transformers took T5 (forward(**kwargs)) for a model that normalises its own loss and skipped the division
    by the accumulation steps: the logged loss was 2x / 4x the real one with accumulation 2 / 4."""
    root, direct = constant_task
    cfg = _cfg(full={"max_steps": 2, "batch_size": 4, "grad_accum_steps": grad_accum})
    request = dataclasses.replace(_request(cfg, "full"), lr=1e-12)  # weights stay put: every step sees one loss
    summary = train(request, base_dir=root / "base", features_dir=root / "features", out_dir=tmp_path / "out",
                    checkpoint_dir=tmp_path / "ckpt", live_dir=tmp_path / "live", runtime=CPU)
    assert summary["train_loss_first"] == pytest.approx(direct, rel=0.01)
    assert summary["train_loss_mean"] == pytest.approx(direct, rel=0.01)


class RecordCheckpointing(TrainerCallback):
    """Whether the model the Trainer trains recomputes its activations."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.enabled = model.is_gradient_checkpointing


@pytest.mark.parametrize("method", ["full", "lora"])
def test_activation_checkpointing_is_applied_and_changes_no_number(constant_task, tmp_path, method):
    """Checkpointing recomputes activations instead of storing them: the model must have it on, and two steps must
    give the same losses and weights as without it (no dropout here, so both runs see identical forwards)."""
    root, _ = constant_task
    summaries, weights = {}, {}
    for on in (False, True):
        cfg = _cfg(**{method: {"max_steps": 2, "batch_size": 4, "activation_checkpointing": on}})
        record = RecordCheckpointing()
        summaries[on] = train(_request(cfg, method), base_dir=root / "base", features_dir=root / "features",
                              out_dir=tmp_path / f"out{on}", checkpoint_dir=tmp_path / f"ckpt{on}",
                              live_dir=tmp_path / f"live{on}", runtime=CPU, callbacks=[record])
        assert record.enabled is on
        weights[on] = load_summarizer(tmp_path / f"out{on}", root / "base" if method == "lora" else None)
    for key in ("train_loss_first", "train_loss_last", "eval_loss"):
        assert summaries[True][key] == pytest.approx(summaries[False][key], abs=1e-4), key
    for (name, a), b in zip(weights[False].named_parameters(), weights[True].parameters()):
        assert torch.allclose(a, b, atol=1e-6), name


@pytest.mark.slow  # two gloo processes, about 25 s each
@pytest.mark.parametrize("how", ["num_processes", "accelerate_config"])
def test_two_processes_log_what_one_does(constant_task, tmp_path, how):
    """Two data-parallel CPU processes (gloo) through the stage's own relaunch, asked for by `num_processes` or by
    an accelerate config file: the loss is not multiplied by the number of processes, and rank 0 alone writes the
    curves and the metrics."""
    root, direct = constant_task
    raw = tiny_params()
    if how == "num_processes":
        raw["training"].update(num_processes=2, logging_steps=1)
    else:  # the file says 2 processes; num_processes stays 1
        raw["training"].update(accelerate_config=str(ROOT / "configs/accelerate/two_cpu_processes.yaml"),
                               logging_steps=1)
    raw["full"].update(max_steps=2, batch_size=4)
    params = write_params(tmp_path / "params.yaml", raw)
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "ACCELERATE_LAUNCHED")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "stages/finetune.py"), "--params", str(params), "--method", "full",
         "--base-model", str(root / "base"), "--features", str(root / "features"), "--out", str(tmp_path / "out"),
         "--checkpoints", str(tmp_path / "ckpt"), "--live", str(tmp_path / "live"),
         "--metrics", str(tmp_path / "metrics.json")],
        capture_output=True, text=True, timeout=600, env=env | {"HF_HUB_OFFLINE": "1"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    metrics = read_json(tmp_path / "metrics.json")
    assert metrics["processes"] == 2 and metrics["steps"] == 2
    assert metrics["train_loss_first"] == pytest.approx(direct, rel=0.01)
    live = json.loads((tmp_path / "live/metrics.json").read_text())
    assert live["step"] == 2 and _steps(tmp_path / "live/plots/metrics/loss.tsv") == [1, 2]


def test_weights_train_in_fp32_from_a_bf16_checkpoint(constant_task, tmp_path):
    """transformers 5 loads dtype="auto": a bf16 checkpoint would have trained in pure bf16."""
    from safetensors import safe_open

    root, _ = constant_task
    from transformers import AutoModelForSeq2SeqLM

    AutoModelForSeq2SeqLM.from_pretrained(root / "base", dtype=torch.bfloat16).save_pretrained(tmp_path / "bf16")
    load_tokenizer(root / "base").save_pretrained(tmp_path / "bf16")
    cfg = _cfg(full={"max_steps": 1})
    train(_request(cfg, "full"), base_dir=tmp_path / "bf16", features_dir=root / "features",
          out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", live_dir=tmp_path / "live", runtime=CPU)
    with safe_open(tmp_path / "out/model.safetensors", "pt") as f:
        assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"F32"}


class RecordOptimizer(TrainerCallback):
    def __init__(self):
        self.name = None

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        self.name = type(optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer).__name__


@pytest.mark.parametrize("optimizer, expected", [("adamw_torch", "AdamW"), ("adafactor", "Adafactor")])
def test_optimizer_param_is_used(constant_task, tmp_path, optimizer, expected):
    root, _ = constant_task
    cfg = _cfg(lora={"max_steps": 1, "optimizer": optimizer})
    record = RecordOptimizer()
    summary = train(_request(cfg, "lora"), base_dir=root / "base", features_dir=root / "features",
                    out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", live_dir=tmp_path / "live",
                    runtime=CPU, callbacks=[record])
    assert record.name == expected and summary["optimizer"] == optimizer


class _TieLikeFsdp(TrainerCallback):
    """What accelerate's FSDP2 preparation does with fsdp_cpu_ram_efficient_loading: call tie_weights()."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        model.tie_weights()


def test_an_untied_output_layer_survives_tie_weights(tiny_workspace, tmp_path):
    """FLAN-T5 v1.1 has its own lm_head; transformers 5 marks every T5 config tied, so a tie_weights() during
    preparation replaced the head with the input embedding. The tiny models are tied: this one is not."""
    tok = load_tokenizer(tiny_workspace / "models/base")
    model = build_tiny_t5(_cfg().model.tiny, tok, seed=0)
    with torch.no_grad():
        model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight))
    base_dir = tmp_path / "untied"
    model.save_pretrained(base_dir)
    tok.save_pretrained(base_dir)
    head = model.lm_head.weight.detach().clone()
    cfg = dataclasses.replace(_cfg(full={"max_steps": 1}), lr=1e-9)
    train(_request(cfg, "full"), base_dir=base_dir,
          features_dir=tiny_workspace / "data/tokenized", out_dir=tmp_path / "full", checkpoint_dir=tmp_path / "c",
          live_dir=tmp_path / "live", runtime=CPU, callbacks=[_TieLikeFsdp()])
    trained = load_summarizer(tmp_path / "full")
    assert torch.allclose(trained.lm_head.weight, head, atol=1e-6)  # lr 1e-9: the head it started from
    assert not torch.allclose(trained.lm_head.weight, trained.shared.weight)


def test_unknown_lora_target_stops_the_stage_before_training(tiny_workspace, tmp_path):
    """The input that broke: `lora.target_modules: [nonexistent]` passed check_params, and finetune@lora died with
    peft's NoMatchingPeftModuleError traceback. Now: one line naming the key, the missing name and the layer names
    there are, exit 1, and no checkpoint or output written."""
    raw = tiny_params()
    raw["lora"]["target_modules"] = ["q", "nonexistent"]  # one good name: peft alone would ignore the bad one
    p = write_params(tmp_path / "params.yaml", raw)
    proc = subprocess.run([sys.executable, str(ROOT / "stages/finetune.py"), "--params", str(p), "--method", "lora",
                           "--base-model", str(tiny_workspace / "models/base"),
                           "--features", str(tiny_workspace / "data/tokenized"), "--out", str(tmp_path / "lora"),
                           "--checkpoints", str(tmp_path / "ckpt"), "--live", str(tmp_path / "live"),
                           "--metrics", str(tmp_path / "lora.json")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert "lora.target_modules: no layer of T5ForConditionalGeneration is named 'nonexistent';" in errors[0]
    assert "the layers LoRA can adapt here are named" in errors[0] and " q, " in errors[0] and "'q'" not in errors[0]
    assert not (tmp_path / "lora").exists() and not (tmp_path / "ckpt").exists()


def test_lora_targets_must_be_layers_lora_can_adapt():
    from transformers import T5Config, T5ForConditionalGeneration

    from summarizer.errors import ConfigError
    from summarizer.training import check_lora_targets

    model = T5ForConditionalGeneration(T5Config(vocab_size=64, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8))
    check_lora_targets(model, ["q", "v", "wo", "lm_head", "decoder.block.0.layer.0.SelfAttention.q"])  # as peft
    # layer_norm exists but is no layer LoRA wraps: peft would fail on it later with its own traceback.
    with pytest.raises(ConfigError, match=r"named 'layer_norm', 'qq';"):
        check_lora_targets(model, ["q", "layer_norm", "qq"])


class SlowEvaluation(TrainerCallback):
    """Each evaluation (every 2 steps here) costs 0.3 s more: time the step throughput must not include."""

    def on_evaluate(self, args, state, control, **kwargs):
        time.sleep(0.3)


def test_step_throughput_leaves_out_evaluation_and_counts_model_flops(constant_task, tmp_path):
    """Issue 37: Trainer's train_samples_per_second includes the evaluations and checkpoint saves between steps;
    step_samples_per_s times the optimizer steps alone. flops_per_example is 6 × (N_enc·T_in + (N_dec+N_head)·T_out)
    at the set's mean lengths."""
    root, _ = constant_task
    cfg = _cfg(full={"max_steps": 6, "batch_size": 4})
    summary = train(_request(cfg, "full"), base_dir=root / "base", features_dir=root / "features",
                    out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", live_dir=tmp_path / "live",
                    runtime=CPU, callbacks=[SlowEvaluation()])
    assert summary["train_runtime_s"] - summary["step_time_s"] >= 0.3 * 3  # 3 evaluations (eval_steps 2) left out
    seconds = summary["step_time_s"]  # rounded to 0.01 s: the rate is bounded by the rounding either way
    assert 6 * 4 / (seconds + 0.005) <= summary["step_samples_per_s"] <= 6 * 4 / max(seconds - 0.005, 1e-9)
    assert summary["step_samples_per_s"] > summary["train_samples_per_s"]
    row = read_jsonl(root / "features/train.jsonl")[0]
    assert summary["mean_input_tokens"] == len(row["input_ids"]) and summary["mean_target_tokens"] == len(row["labels"])
    from summarizer.flops import parameter_split, train_flops_per_example
    from transformers import AutoModelForSeq2SeqLM

    split = parameter_split(AutoModelForSeq2SeqLM.from_pretrained(root / "base"))
    expected = train_flops_per_example(split, len(row["input_ids"]), len(row["labels"]))
    assert summary["flops_per_example"] == pytest.approx(expected, rel=1e-3)
