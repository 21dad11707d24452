"""Does a trained variant read its input? Two figures per saved model, on the first ``--n`` DialogSum test dialogues
in the instruction prompt (no generation):

- ``token_variation``: the encoder output's standard deviation across a dialogue's tokens, per dimension, divided by
  the output's per-dimension scale (RMS). About 1 for a freshly initialised T5; near 0 when the encoder has collapsed
  to one vector whatever it reads.
- ``first_step_dependence``: over pairs of dialogues, the mean of the largest difference between the decoder's
  first-step log-probabilities (0: the first word does not depend on the dialogue).
- ``copy_accuracy``: given a dialogue (its tokens, no prompt), the share of its first ``--copy-tokens`` tokens the
  decoder predicts (argmax, teacher-forced), the denoising pretraining's task; ``copy_accuracy_other`` the same
  targets given the *next* dialogue instead. Equal figures: the decoder predicts the text without reading it.

    python benchmarks/encoder_dependence.py --models models/base models/full [--n 40] [--copy-tokens 128] [--json]

(Full models only: a LoRA or prompt-tuning folder holds an adapter, not a model.)
"""

from __future__ import annotations

import itertools

import torch
from transformers import AutoModelForSeq2SeqLM

from summarizer.config import load_params
from summarizer.data import load_local_splits
from summarizer.evaluation import to_dialogues
from summarizer.modeling import load_tokenizer
from summarizer.pretraining import copy_accuracy
from summarizer.tokenization import fitted_prompts

from benchmarks_common import ROOT, parser, report


@torch.no_grad()
def dependence(model_dir: str, dialogues: list[str], template: str, max_source_tokens: int,
               copy_tokens: int) -> dict:
    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    prompts, _ = fitted_prompts(tokenizer, dialogues, template, max_source_tokens)
    enc = tokenizer(prompts, return_tensors="pt", padding=True, truncation=True, max_length=max_source_tokens)
    hidden = model.encoder(**enc).last_hidden_state
    ratios = []
    for h, mask in zip(hidden, enc["attention_mask"]):
        tokens = h[mask.bool()]
        ratios.append((tokens.std(0).mean() / tokens.pow(2).mean().sqrt()).item())
    start = torch.full((len(prompts), 1), model.config.decoder_start_token_id)
    logprobs = model(**enc, decoder_input_ids=start).logits[:, 0].log_softmax(-1)
    diffs = [(logprobs[i] - logprobs[j]).abs().max().item()
             for i, j in itertools.combinations(range(len(prompts)), 2)]
    ids = tokenizer(dialogues, add_special_tokens=False, truncation=True,
                    max_length=max_source_tokens - 1)["input_ids"]
    targets = [i[:copy_tokens] for i in ids]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    return {"token_variation": round(sum(ratios) / len(ratios), 4),
            "first_step_dependence": round(sum(diffs) / len(diffs), 4),
            "copy_accuracy": round(copy_accuracy(model, ids, targets, eos, pad), 4),
            "copy_accuracy_other": round(copy_accuracy(model, ids[1:] + ids[:1], targets, eos, pad), 4)}


def main(argv=None) -> dict:
    p = parser(__doc__)
    p.add_argument("--models", nargs="+", required=True, help="saved full models (folders)")
    p.add_argument("--n", type=int, default=40, help="test dialogues")
    p.add_argument("--copy-tokens", type=int, default=128, help="copy targets: each dialogue's first N tokens")
    args = p.parse_args(argv)
    cfg = load_params(ROOT / "params.yaml")
    dialogues = [d.dialogue for d in to_dialogues(load_local_splits(args.data)["test"])[: args.n]]
    figures = {m: dependence(m, dialogues, cfg.prompt.template, cfg.prompt.max_source_tokens, args.copy_tokens)
               for m in args.models}
    line = "; ".join(f"{m}: token variation {f['token_variation']}, first-step dependence "
                     f"{f['first_step_dependence']}, copy accuracy {f['copy_accuracy']} (given another dialogue "
                     f"{f['copy_accuracy_other']})" for m, f in figures.items())
    return report(line, figures, args.json)


if __name__ == "__main__":
    main()
