"""PPO with the pinned trl 0.11.4: that it *works*, not only runs.

- queries reach generate() on the trainer's device (a CPU tensor crashed T5 on any GPU);
- the KL reference is the LoRA summarizer PPO starts from: KL 0 before the first update;
- the log-probs trl trains on are those of the tokens the sampler drew (the decoder start token is kept), the first
  sampled token included;
- a synthetic reward with a clear signal rises under PPO;
- only the fresh adapter and the value head train, and what is saved reloads as the trained policy.
"""

import dataclasses
import math

import pytest
import torch

from helpers import perturbed_lora_adapter, tiny_params
from summarizer.config import parse_params
from summarizer.device import Runtime
from summarizer.io import read_jsonl
from summarizer.modeling import build_tiny_t5, load_summarizer, load_tokenizer
from summarizer.ppo import (PpoReward, cut_at_eos, encode_queries, generate_responses, heldout_reward, load_policy,
                            make_trainer, run_ppo, sample, save_policy, select_prompts, split_heldout)
from summarizer.toxicity import load_toxicity_scorer

CPU = Runtime("cpu", "fp32")


def _cfg(**ppo):
    raw = tiny_params()
    raw["ppo"].update(dict(steps=2, batch_size=4, mini_batch_size=2, min_new_tokens=4, max_new_tokens=10,
                           prompt_min_chars=100) | ppo)
    return parse_params(raw)


@pytest.fixture(scope="module")
def base(tiny_workspace, tmp_path_factory):
    """A tiny base whose outputs depend on its weights (the demo's small init gives near-uniform logits)."""
    cfg = _cfg()
    tokenizer = load_tokenizer(tiny_workspace / "models/base")
    model = build_tiny_t5(dataclasses.replace(cfg.model.tiny, initializer_factor=0.5), tokenizer, seed=3)
    out = tmp_path_factory.mktemp("base") / "base"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def sft_adapter(base, tmp_path_factory):
    """A LoRA adapter that changes the model (B perturbed away from its zero init, as training would)."""
    return perturbed_lora_adapter(base, _cfg().lora, tmp_path_factory.mktemp("sft") / "lora")


@pytest.fixture(scope="module")
def prompts(tiny_workspace):
    cfg = _cfg()
    return select_prompts(read_jsonl(tiny_workspace / "data/prepared/train.jsonl"), cfg.prompt.template, 100, 1000,
                          cfg.seed)


def _trainer(base, adapter, cfg, runtime=CPU):
    torch.manual_seed(0)
    tokenizer = load_tokenizer(base)
    policy = load_policy(base, adapter)
    return make_trainer(policy, tokenizer, cfg.ppo, runtime, cfg.seed)


def test_select_prompts_filters_and_shuffles_by_seed():
    rows = [{"dialogue": "x" * n, "summary": str(n)} for n in (150, 200, 201, 1000, 1001, 500)]
    a = select_prompts(rows, "<{dialogue}>", 200, 1000, seed=1)
    assert sorted(len(p.prompt) - 2 for p in a) == [201, 500, 1000]
    assert all(p.reference == str(len(p.prompt) - 2) for p in a)
    assert a == select_prompts(rows, "<{dialogue}>", 200, 1000, seed=1)


def test_queries_reach_generate_on_the_trainers_device(base, sft_adapter, prompts):
    """On a GPU, CPU query ids reaching T5's CUDA embedding crashed the stage. Make the device observable on a
    CPU: the trainer claims the `meta` device, and generate() records what it receives."""
    cfg = _cfg()
    trainer = _trainer(base, sft_adapter, cfg)
    policy = trainer.model
    seen = []

    def spy(**kwargs):  # meta tensors hold no data: record the device, answer "<start> 5 </s>" per query
        ids = kwargs["input_ids"]
        seen.append(ids.device.type)
        return torch.tensor([[0, 5, 1]] * ids.shape[0])

    policy.generate = spy
    trainer.current_device = torch.device("meta")
    queries = encode_queries(trainer.tokenizer, prompts[:4], 512)
    responses = generate_responses(trainer, queries, max_new_tokens=5, batch_size=2, top_k=0, top_p=1.0)
    assert len(responses) == 4 and seen == ["meta", "meta"]  # two batches of two, on the trainer's device


def test_kl_is_zero_before_the_first_update(base, sft_adapter, prompts):
    """The reference is the fine-tuned LoRA summarizer (not the base model): with a LoRA adapter that changes the
    model, the first step's KL, computed before any update, is 0."""
    cfg = _cfg(steps=1)
    trainer = _trainer(base, sft_adapter, cfg)
    # ... and the policy really is the LoRA summarizer: same logits as base + adapter.
    sft = load_summarizer(sft_adapter, base)
    ids = encode_queries(trainer.tokenizer, prompts[:1], 512)[0][None]
    start = torch.zeros((1, 1), dtype=torch.long)
    with torch.no_grad():
        expected = sft(input_ids=ids, decoder_input_ids=start).logits
        untuned = load_summarizer(base)(input_ids=ids, decoder_input_ids=start).logits
        got = trainer.model.pretrained_model(input_ids=ids, decoder_input_ids=start).logits
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(untuned, expected, atol=0.1), "the test adapter must change the model"

    history = run_ppo(trainer, prompts, lambda texts: [0.0] * len(texts), cfg.ppo, max_source_tokens=512,
                      seed=cfg.seed, device="cpu", progress=False)
    assert abs(history[0]["kl"]) < 1e-3, history[0]


def test_trl_log_probs_equal_the_samplers(base, sft_adapter, prompts):
    """trl's per-token log-probs of a sampled response (what PPO's ratio and KL use) equal those the sampler drew
    it with. With the decoder start token stripped they were those of a sequence the model never sampled. The mask
    is pinned rather than an outcome: on this tiny model (tied embeddings) PPO moved the opening token as far with
    trl's mask as without it (greedy share 0.5 -> 0.0 both ways), through the decoder input embedding."""
    cfg = _cfg()
    trainer = _trainer(base, sft_adapter, cfg)
    policy = trainer.model
    captured, real_generate = [], policy.generate

    def recording(**kwargs):
        out = real_generate(**kwargs, output_logits=True, return_dict_in_generate=True)
        captured.append((out.sequences, torch.stack(out.logits, dim=1)))
        return out.sequences

    policy.generate = recording
    queries = encode_queries(trainer.tokenizer, prompts[:4], 512)
    torch.manual_seed(1)
    responses = generate_responses(trainer, queries, max_new_tokens=12, batch_size=4, top_k=0, top_p=1.0)
    (sequences, logits), = captured
    sampler = torch.log_softmax(logits.float(), dim=-1).gather(-1, sequences[:, 1:, None])[..., 0]

    model_inputs = trainer.prepare_model_inputs(queries, responses)
    with torch.no_grad():
        logprobs, _, _, masks = trainer.batched_forward_pass(policy, queries, responses, model_inputs)
    compared = 0
    for j, response in enumerate(responses):
        n = len(response) - 1  # sampled tokens after the start token
        positions = masks[j].nonzero().flatten()
        # trl scores token t + 1 at position t; position 0 is the first sampled token, which trl 0.11.4 masks and
        # Seq2SeqPPOTrainer keeps (an opening insult must be trainable)
        assert positions.tolist() == list(range(0, n))
        assert torch.allclose(logprobs[j, positions], sampler[j, positions], atol=1e-4), (j, logprobs[j, positions],
                                                                                         sampler[j, positions])
        compared += len(positions)
    assert compared >= 4 * 5


@pytest.mark.slow  # many PPO steps
def test_ppo_learns_a_synthetic_reward(base, sft_adapter, prompts):
    """A reward with a clear signal (the share of response tokens from the lower half of the vocabulary) rises
    over a few dozen seeded PPO steps, while the KL stays finite."""
    cfg = _cfg(steps=30, batch_size=8, mini_batch_size=4, ppo_epochs=2, lr=5e-3, min_new_tokens=8, max_new_tokens=8,
               init_kl_coef=0.01, adaptive_kl=False)
    trainer = _trainer(base, sft_adapter, cfg)
    tokenizer = trainer.tokenizer
    half = len(tokenizer) // 2

    def low_token_share(texts):
        ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [sum(i < half for i in seq) / max(len(seq), 1) for seq in ids]

    train, heldout = split_heldout(prompts, 8, cfg.ppo.batch_size)
    history = run_ppo(trainer, train, low_token_share, cfg.ppo, max_source_tokens=512, seed=cfg.seed,
                      device="cpu", progress=False)
    rewards = [h["reward_mean"] for h in history]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.2, rewards
    assert all(math.isfinite(h["kl"]) for h in history)
    # ... and on prompts it never trained on, against the policy it started from (its adapter disabled)
    measured = heldout_reward(trainer, heldout, low_token_share, cfg.ppo, max_source_tokens=512, seed=cfg.seed,
                              device="cpu", resamples=200)
    assert measured["difference"]["ci_low"] > 0.1, measured
    assert measured["after"]["mean"] > measured["before"]["mean"] + 0.2, measured


def test_heldout_reward_is_zero_before_any_update(base, sft_adapter, prompts):
    """Before any PPO step the policy *is* the model it started from: the same seed gives the same samples, so
    the paired difference is exactly 0 (a "before" taken from another model or another seed would not be)."""
    cfg = _cfg(heldout_samples=2)
    trainer = _trainer(base, sft_adapter, cfg)
    measured = heldout_reward(trainer, prompts[:6], lambda texts: [len(t) for t in texts], cfg.ppo,
                              max_source_tokens=512, seed=cfg.seed, device="cpu", resamples=50)
    assert measured["difference"] == {"difference": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert measured["before"]["mean"] > 0 and measured["prompts"] == 6 and measured["samples_per_prompt"] == 2


def test_split_heldout_keeps_the_last_prompts_out_of_training():
    train, heldout = split_heldout(list("abcdefghij"), 3, batch_size=4)
    assert train == list("abcdefg") and heldout == list("hij")
    assert split_heldout(list("abcd"), 0, batch_size=4) == (list("abcd"), [])
    with pytest.raises(ValueError, match="ppo.heldout_prompts=3"):
        split_heldout(list("abcdef"), 3, batch_size=4)


def test_two_ppo_steps_train_only_the_new_adapter_and_save_the_policy(tiny_workspace, base, sft_adapter, prompts,
                                                                       tmp_path):
    cfg = _cfg()
    ws = tiny_workspace
    trainer = _trainer(base, sft_adapter, cfg)
    policy = trainer.model
    scorer = load_toxicity_scorer(ws / "models/classifier", cfg.classifier, device="cpu")
    lora_before = {n: p.detach().clone() for n, p in policy.named_parameters() if "lora_" in n}
    frozen_before = {n: p.detach().clone() for n, p in policy.named_parameters()
                     if "lora_" not in n and "v_head" not in n}
    assert lora_before and all(not p.requires_grad for n, p in policy.named_parameters() if n in frozen_before)

    history = run_ppo(trainer, prompts, scorer.reward, cfg.ppo, max_source_tokens=512, seed=cfg.seed,
                      device="cpu", progress=False)

    assert len(history) == 2
    for row in history:
        assert math.isfinite(row["kl"]) and math.isfinite(row["reward_mean"])
        assert math.isfinite(row["policy_loss"]) and math.isfinite(row["value_loss"])
        assert 1 <= row["response_tokens_mean"] <= cfg.ppo.max_new_tokens
    after = dict(policy.named_parameters())
    assert any(not torch.equal(lora_before[n], after[n]) for n in lora_before), "PPO must update the adapter"
    assert all(torch.equal(p, after[n]) for n, p in frozen_before.items()), "only the adapter and value head train"

    ids = encode_queries(trainer.tokenizer, prompts[:2], 512)[0][None]
    start = torch.zeros((1, 1), dtype=torch.long)
    with torch.no_grad():
        expected = policy.pretrained_model(input_ids=ids, decoder_input_ids=start).logits
    save_policy(policy, trainer.tokenizer, tmp_path / "ppo")
    assert (tmp_path / "ppo/model.safetensors").exists() and (tmp_path / "ppo/tokenizer.json").exists()
    reloaded = load_summarizer(tmp_path / "ppo")
    assert not any("v_head" in n or "lora_" in n for n, _ in reloaded.named_parameters())
    # PPO ran without dropout; the saved model keeps the base's, so fine-tuning it later trains with dropout.
    base_dropout = load_summarizer(base).config.dropout_rate
    assert base_dropout > 0 and reloaded.config.dropout_rate == base_dropout
    with torch.no_grad():  # merging the adapters into the weights rounds differently: a relative tolerance
        assert torch.allclose(reloaded(input_ids=ids, decoder_input_ids=start).logits, expected, rtol=1e-3,
                              atol=1e-3)


def test_mixed_precision_is_applied(base, sft_adapter, prompts):
    """precision: bf16 runs PPO's forward passes under bf16 autocast over fp32 weights (not silently fp32)."""
    from accelerate.state import AcceleratorState

    cfg = _cfg(steps=1)
    AcceleratorState._reset_state(True)  # accelerate fixes the precision once per process (a stage is one)
    try:
        trainer = _trainer(base, sft_adapter, cfg, runtime=Runtime("cpu", "bf16"))
        assert trainer.accelerator.mixed_precision == "bf16"
        assert next(trainer.model.parameters()).dtype == torch.float32
        history = run_ppo(trainer, prompts, lambda texts: [1.0] * len(texts), cfg.ppo, max_source_tokens=512,
                          seed=cfg.seed, device="cpu", progress=False)
        assert math.isfinite(history[0]["kl"])
    finally:
        AcceleratorState._reset_state(True)


def test_reward_quarters_compare_first_and_last_steps():
    from summarizer.ppo import reward_quarters

    history = [{"rewards": [float(step)] * 4} for step in range(8)]  # rewards rise by 1 per step
    out = reward_quarters(history, resamples=200, seed=0)
    assert out["steps_per_quarter"] == 2
    assert out["first"]["mean"] == pytest.approx(0.5) and out["last"]["mean"] == pytest.approx(6.5)
    assert out["difference"]["difference"] == pytest.approx(6.0)
    assert out["difference"]["ci_low"] > 0  # a rise the CI separates from zero
    flat = reward_quarters([{"rewards": [1.0, -1.0]} for _ in range(4)], resamples=200, seed=0)
    assert flat["difference"]["ci_low"] <= 0 <= flat["difference"]["ci_high"]


def test_a_state_left_by_another_module_is_reset_between_modules(base, sft_adapter):
    """test_gpu.py leaves accelerate set to CUDA/bf16; the PPO tests after it failed with "AcceleratorState has
    already been initialized". Simulated here on the CPU with bf16; conftest resets the state after each module."""
    from accelerate import Accelerator

    from helpers import reset_accelerate

    reset_accelerate()
    Accelerator(mixed_precision="bf16", cpu=True)  # the leak
    try:
        with pytest.raises(ValueError, match="already been initialized"):
            _trainer(base, sft_adapter, _cfg(steps=1))
    finally:
        reset_accelerate()  # what conftest's module fixture does
    assert _trainer(base, sft_adapter, _cfg(steps=1)).accelerator.mixed_precision == "no"


def test_before_and_after_ppo_are_one_representation(base, sft_adapter, tmp_path):
    """Toxicity before/after PPO compared `lora` (bf16 base + the adapter peft keeps in fp32) with the merged PPO
    model loaded in bf16: two numerical objects, different with no PPO step at all. `ppo_start` is the policy PPO
    starts from, saved like `ppo`: with zero PPO steps the two give identical bf16 logits (and greedy outputs)."""
    tokenizer = load_tokenizer(base)
    policy = load_policy(base, sft_adapter, tokenizer=tokenizer, start_dir=tmp_path / "ppo_start")
    save_policy(policy, tokenizer, tmp_path / "ppo")  # zero steps
    ids = encode_queries(tokenizer, ["#Person1#: Hello, how was the trip?\n#Person2#: Long, but fine."], 512)[0][None]
    start = torch.zeros((1, 1), dtype=torch.long)

    def logits(model):
        with torch.inference_mode():
            return model(input_ids=ids, decoder_input_ids=start).logits.float()

    bf16 = dict(dtype=torch.bfloat16)
    before, after = (logits(load_summarizer(tmp_path / v, **bf16)) for v in ("ppo_start", "ppo"))
    assert torch.equal(before, after)
    old_before = logits(load_summarizer(sft_adapter, base, **bf16))  # what was compared before
    assert not torch.equal(old_before, after)
    assert load_summarizer(tmp_path / "ppo_start").config.dropout_rate > 0  # saved like ppo: the base's dropout


@pytest.fixture(scope="module")
def eos_prone_base(base, tmp_path_factory):
    """The tiny base with EOS made likely but not certain: its output row for EOS points along the decoder's mean
    final state, so that sampled responses end at varied lengths (a random tiny model almost never samples EOS)."""
    model, tokenizer = load_summarizer(base), load_tokenizer(base)
    ids = tokenizer(["a b c d e f g"] * 2, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        state = model(input_ids=ids, decoder_input_ids=torch.zeros((2, 6), dtype=torch.long),
                      output_hidden_states=True).decoder_hidden_states[-1].mean(dim=(0, 1))
        head = model.get_output_embeddings().weight
        head[tokenizer.eos_token_id] = 2.0 * state / state.norm() * head.norm(dim=1).mean()
    out = tmp_path_factory.mktemp("eos") / "base"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_fixed_length_sampling_returns_exactly_n_tokens_and_scores_the_text_cut_at_the_first_eos(
        eos_prone_base, prompts):
    """Ziegler et al.'s sampling: EOS is sampled (not suppressed) but stops nothing, every response has the same
    length, and the reward sees the text up to the first EOS. The course's sampling stops at EOS instead."""
    adapter = perturbed_lora_adapter(eos_prone_base, _cfg().lora, eos_prone_base.parent / "lora", scale=0.1)
    cfg = _cfg(max_new_tokens=12, fixed_length=True)
    trainer = _trainer(eos_prone_base, adapter, cfg)
    eos = trainer.tokenizer.eos_token_id
    queries = encode_queries(trainer.tokenizer, prompts[:16], 512)
    torch.manual_seed(0)
    responses, texts, lengths = sample(trainer, queries, cfg.ppo, max_new_tokens=12, batch_size=8)
    assert all(len(r) == 13 for r in responses)  # the start token and exactly 12 sampled tokens
    ended_early = [r for r in responses if eos in r[1:-1].tolist()]
    assert len(ended_early) >= 4, "the test model must sample EOS inside some responses"
    for r, text, n in zip(responses, texts, lengths):
        cut = r[1:].tolist()
        cut = cut[:cut.index(eos)] if eos in cut else cut
        assert n == len(cut) and text == trainer.tokenizer.decode(cut, skip_special_tokens=True)
    assert any(n < 11 for n in lengths)

    course = _cfg(max_new_tokens=12, fixed_length=False).ppo
    torch.manual_seed(0)
    stopped, _, _ = sample(trainer, queries, course, max_new_tokens=12, batch_size=8)
    assert any(len(r) < 13 for r in stopped)  # ends at EOS (trl cuts each response after its first EOS)


def test_the_reward_scores_the_text_before_the_first_eos_not_what_follows(base, sft_adapter, prompts):
    """After its first EOS a fixed-length response goes on with ordinary tokens; none of them reach the scorer."""
    cfg = _cfg(max_new_tokens=6, fixed_length=True)
    trainer = _trainer(base, sft_adapter, cfg)
    tok = trainer.tokenizer
    a, b, c, d = tok("hello world again today", add_special_tokens=False)["input_ids"][:4]
    crafted = torch.tensor([[0, a, b, tok.eos_token_id, c, d, c], [0, c, d, a, b, a, b]])
    trainer.model.generate = lambda **kwargs: crafted[:kwargs["input_ids"].shape[0]]
    queries = encode_queries(tok, prompts[:2], 512)
    responses, texts, lengths = sample(trainer, queries, cfg.ppo, max_new_tokens=6, batch_size=2)
    assert [len(r) for r in responses] == [7, 7]  # trl gets every token, after the EOS too
    assert texts == [tok.decode([a, b]), tok.decode([c, d, a, b, a, b])] and lengths == [2, 6]


def test_cut_at_eos_drops_the_start_token_and_everything_from_the_first_eos():
    assert cut_at_eos(torch.tensor([0, 5, 6, 1, 7, 1]), eos_id=1) == [5, 6]
    assert cut_at_eos(torch.tensor([0, 5, 6]), eos_id=1) == [5, 6]


@pytest.mark.slow  # dozens of PPO steps
def test_ppo_lowers_the_share_of_greedy_outputs_with_a_penalised_word(base, sft_adapter, prompts):
    """A tiny policy whose greedy summaries mostly contain one token (its 'insult'); a reward that penalises that
    token, with the params' reward pieces on (P(non-toxic) term, fixed length, floor). After a few dozen PPO steps
    fewer greedy outputs contain it: the learning signal reaches what evaluation decodes, not only the samples."""
    cfg = _cfg(steps=40, batch_size=8, mini_batch_size=4, ppo_epochs=2, lr=5e-3, max_new_tokens=8,
               init_kl_coef=0.01, adaptive_kl=False, fixed_length=True, quality_weight=0.0, min_summary_tokens=0)
    trainer = _trainer(base, sft_adapter, cfg)
    tokenizer, model = trainer.tokenizer, trainer.model.pretrained_model
    queries = encode_queries(tokenizer, prompts[:32], 512)

    def greedy() -> list[list[int]]:
        out = []
        with torch.no_grad():
            for q in queries:
                # The tiny model's argmax is often the pad token, which decodes to nothing: never chosen here
                ids = model.generate(input_ids=q[None], do_sample=False, max_new_tokens=8,
                                     suppress_tokens=[i for i in tokenizer.all_special_ids
                                                      if i != tokenizer.eos_token_id])[0]
                out.append(cut_at_eos(ids, tokenizer.eos_token_id))
        return out

    before = greedy()
    counts = torch.bincount(torch.tensor([t for seq in before for t in set(seq)]), minlength=len(tokenizer))
    word = int(counts.argmax())
    share_before = sum(word in seq for seq in before) / len(before)
    assert share_before >= 0.5, "the tiny policy must emit its word in most greedy outputs"
    text = tokenizer.decode([word]).strip()
    assert text, "the word must decode to visible text"

    def margin(texts):  # a classifier's margin: +3 for a clean text, 3 less for each time the word occurs
        return [3.0 - 3.0 * t.count(text) for t in texts]

    run_ppo(trainer, prompts, PpoReward.from_params(margin, cfg.ppo), cfg.ppo, max_source_tokens=512,
            seed=cfg.seed, device="cpu", progress=False)
    share_after = sum(word in seq for seq in greedy()) / len(before)
    assert share_after <= share_before - 0.3, (share_before, share_after)

