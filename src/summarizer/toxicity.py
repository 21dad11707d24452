"""Toxicity scoring with a hate-speech classifier: probabilities for evaluation, logits for the PPO reward."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from summarizer.config import ClassifierParams
from summarizer.modeling import load_classifier


class ToxicityScorer:
    """Wraps a sequence classifier whose labels include the toxic and non-toxic ones named in params."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, toxic_label: str,
                 nontoxic_label: str, max_tokens: int, batch_size: int):
        labels = {name: int(i) for i, name in model.config.id2label.items()}
        missing = [l for l in (toxic_label, nontoxic_label) if l not in labels]
        if missing:
            raise ValueError(f"classifier labels {sorted(labels)} lack {missing}")
        self.model, self.tokenizer = model, tokenizer
        self.toxic, self.nontoxic = labels[toxic_label], labels[nontoxic_label]
        self.max_tokens, self.batch_size = max_tokens, batch_size

    @classmethod
    def from_params(cls, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                    params: ClassifierParams) -> ToxicityScorer:
        return cls(model, tokenizer, toxic_label=params.toxic_label, nontoxic_label=params.nontoxic_label,
                   max_tokens=params.max_tokens, batch_size=params.batch_size)

    def logits(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Raw logits, shape (len(texts), n_labels)."""
        device = next(self.model.parameters()).device
        out = []
        with torch.inference_mode():
            for start in tqdm(range(0, len(texts), self.batch_size), desc="toxicity", disable=not progress,
                              leave=False):
                batch = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                       max_length=self.max_tokens, return_tensors="pt").to(device)
                out.append(self.model(**batch).logits.float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.model.config.id2label)))

    def toxic_probability(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """P(toxic label) per text: what the course's toxicity measurement reports."""
        logits = self.logits(texts, progress)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp[:, self.toxic] / exp.sum(axis=1)

    def reward(self, texts: Sequence[str]) -> np.ndarray:
        """The PPO reward: the raw logit of the non-toxic label."""
        return self.logits(texts)[:, self.nontoxic]


def load_toxicity_scorer(path: str | Path, params: ClassifierParams, *, device: str) -> ToxicityScorer:
    """The classifier saved at ``path`` (by the classifier stage), scoring as ``params`` say."""
    model, tokenizer = load_classifier(path, device=device)
    return ToxicityScorer.from_params(model, tokenizer, params)
