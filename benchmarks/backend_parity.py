"""Parity of the generation backends on a trained variant: what CTranslate2 changes in the summaries.

On the pipeline's own models (after `dvc repro`, e.g. the learning profile's), for one variant and the first
``--n`` test dialogues in the instruction prompt:
- greedy, float32: the share of summaries whose token ids are identical, and for the others the logit margin
  (top-1 minus top-2 log-probability under transformers) at the first token where they part — a near-tie, or not;
- beam search (4 beams, without a repetition penalty: CTranslate2's own beam search; and with the params' penalty,
  which CTranslate2 hands to transformers, ct2.beam_mismatch) and sampling (the params' temperature / top-k /
  top-p, one seed): ROUGE-1/L of each backend with 95% CIs, the paired difference and which backend generated;
- int8: ROUGE of CTranslate2 int8 against float32 greedy (paired difference with its CI).

    python benchmarks/backend_parity.py [--models models] [--variant full] [--n 200] [--params P] [--json]
"""

from __future__ import annotations

import dataclasses
import time

import torch

from summarizer.config import load_params
from summarizer.evaluation import evaluate_system, to_dialogues
from summarizer.backends import load_generator
from summarizer.generation import TransformersGenerator
from summarizer.io import read_jsonl
from summarizer.modeling import load_summarizer
from summarizer.prompts import build_prompt
from summarizer.scoring import paired_bootstrap

from benchmarks_common import ROOT, parser, report


def first_split_margin(model, tokenizer, prompt: str, expected: list[int], got: list[int]) -> float:
    """transformers' top-1 minus top-2 log-probability where the two outputs first differ (teacher-forced on
    the shared prefix)."""
    k = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    source = tokenizer(prompt, return_tensors="pt", truncation=True, max_length=512)
    labels = torch.tensor([expected[:k + 1] or [tokenizer.eos_token_id]])
    with torch.inference_mode():
        logits = model(**source, labels=labels).logits[0, k].float()
    top = torch.log_softmax(logits, -1).topk(2).values
    return float(top[0] - top[1])


def main(argv=None) -> dict:
    p = parser(__doc__)
    p.add_argument("--models", default=str(ROOT / "models"), help="the pipeline's models folder")
    p.add_argument("--variant", default="full")
    p.add_argument("--n", type=int, default=200, help="test dialogues")
    p.add_argument("--params", default=str(ROOT / "params.yaml"))
    p.add_argument("--test", default=str(ROOT / "data/prepared/test.jsonl"), help="the prepared test split")
    args = p.parse_args(argv)
    cfg = load_params(args.params)
    models = ROOT / args.models if not args.models.startswith("/") else args.models
    model_dir, base_dir = f"{models}/{args.variant}", f"{models}/base"
    converted = f"{models}/ctranslate2/{args.variant}"
    dialogues = to_dialogues(read_jsonl(args.test))[: args.n]
    prompts = [build_prompt(d.dialogue, cfg.prompt.template) for d in dialogues]
    common = dict(device="cpu", dtype=torch.float32, attention=cfg.model.attention, batch_size=16,
                  max_source_tokens=cfg.prompt.max_source_tokens)
    greedy = dataclasses.replace(cfg.generation, num_beams=1, do_sample=False)
    hf = load_generator(model_dir, base_dir, None, params=dataclasses.replace(greedy, backend="transformers"),
                        **common)
    assert isinstance(hf, TransformersGenerator)
    fast = {t: load_generator(model_dir, base_dir, converted,
                              params=dataclasses.replace(greedy, backend="ctranslate2", compute_type=t), **common)
            for t in ("float32", "int8")}
    boot = dict(resamples=cfg.scoring.bootstrap_resamples, confidence=cfg.scoring.confidence, seed=cfg.seed)
    figures: dict = {"variant": args.variant, "models": str(models), "dialogues": len(prompts)}

    encoded = hf.tokenizer(prompts, truncation=True, max_length=cfg.prompt.max_source_tokens)["input_ids"]
    start = time.perf_counter()
    ids_hf = [x for i in range(0, len(encoded), 16) for x in hf.generate_ids(encoded[i:i + 16], greedy)]
    t_hf = time.perf_counter() - start
    start = time.perf_counter()
    ids_ct = [x for i in range(0, len(encoded), 16) for x in fast["float32"].generate_ids(encoded[i:i + 16], greedy)]
    t_ct = time.perf_counter() - start
    differ = [i for i, (a, b) in enumerate(zip(ids_hf, ids_ct)) if a != b]
    model = load_summarizer(model_dir, base_dir)
    margins = sorted(round(first_split_margin(model, hf.tokenizer, prompts[i], ids_hf[i], ids_ct[i]), 4)
                     for i in differ)
    figures["greedy_float32"] = {"identical": len(prompts) - len(differ), "differ": len(differ),
                                 "margins_where_they_differ": margins, "transformers_s": round(t_hf, 1),
                                 "ctranslate2_s": round(t_ct, 1),
                                 "distinct_outputs": len({tuple(x) for x in ids_hf})}

    def rouge(texts):
        metrics, scores = evaluate_system(dialogues, texts, **boot)
        return {k: metrics["per_reference"][k] for k in ("rouge1", "rougeL")}, scores

    def versus(a_texts, b_texts):
        (ma, sa), (mb, sb) = rouge(a_texts), rouge(b_texts)
        diff = {k: paired_bootstrap(sb.per_reference[k], sa.per_reference[k], weights=sa.rows, **boot)
                for k in ("rouge1", "rougeL")}
        return {"a": ma, "b": mb, "b_minus_a": diff}

    settings = {"beam4": dataclasses.replace(greedy, num_beams=4, repetition_penalty=1.0),
                "beam4_params_penalty": dataclasses.replace(greedy, num_beams=4),
                "sampling": dataclasses.replace(greedy, do_sample=True)}
    for name, params in settings.items():
        a = hf.generate(prompts, params, seed=cfg.seed, progress=False).texts
        b = fast["float32"].generate(prompts, params, seed=cfg.seed, progress=False).texts
        figures[name] = {"a_backend": "transformers",
                         "b_backend": f"ctranslate2 float32 (generated by {fast['float32'].backend_for(params)})",
                         "repetition_penalty": params.repetition_penalty, **versus(a, b),
                         "identical_texts": sum(x == y for x, y in zip(a, b))}
    f32 = fast["float32"].generate(prompts, greedy, progress=False).texts
    i8 = fast["int8"].generate(prompts, greedy, progress=False).texts
    figures["int8_vs_float32_greedy"] = {"a_backend": "ctranslate2 float32", "b_backend": "ctranslate2 int8",
                                         **versus(f32, i8),
                                         "identical_texts": sum(x == y for x, y in zip(f32, i8))}
    g = figures["greedy_float32"]
    line = (f"backend parity ({args.variant}, {len(prompts)} dialogues): greedy ids identical {g['identical']}/"
            f"{len(prompts)}; beam-4 ROUGE-L ct2−hf {figures['beam4']['b_minus_a']['rougeL']['difference']:+.4f} "
            f"({figures['beam4']['identical_texts']} identical); "
            f"sampling {figures['sampling']['b_minus_a']['rougeL']['difference']:+.4f}; int8−fp32 "
            f"{figures['int8_vs_float32_greedy']['b_minus_a']['rougeL']['difference']:+.4f}")
    return report(line, figures, args.json)


if __name__ == "__main__":
    main()
