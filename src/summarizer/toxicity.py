"""Toxicity scoring: probabilities for evaluation, the logit margin for the PPO reward.

Two kinds of classifier, one interface (``logits`` → ``toxic_probability`` and ``reward``):
- a transformers sequence classifier (the Hub's RoBERTa hate-speech model, a saved folder, the tiny random one);
- ``alt-profanity-check``: a calibrated linear SVM over TF-IDF features, trained on human-labelled offensive and
  non-offensive comments, whose weights ship inside its wheel: a real classifier that needs no Hub. Its
  probabilities are turned into log-probabilities, which act as logits (softmax of log-probabilities gives them
  back), so both kinds share the reward and the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import joblib
import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from summarizer.config import ClassifierParams
from summarizer.modeling import PROFANITY_CHECK_FILES, PROFANITY_CHECK_LABELS, load_classifier


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
        """The PPO reward: the logit margin ``logit[nontoxic] − logit[toxic]``, i.e. −logit P(toxic) for two labels.

        Monotone in what is reported (P(toxic)): the raw non-toxic logit was not, since raising both logits raised
        it and left the probability unchanged.
        """
        logits = self.logits(texts)
        return logits[:, self.nontoxic] - logits[:, self.toxic]


# Probabilities are clipped here before the log: the SVM's calibrated output reaches 1 - 1e-12 on plain insults,
# and an unbounded reward would let one sample dominate a PPO batch.
_PROB_FLOOR = 1e-6


class ProfanityCheckScorer(ToxicityScorer):
    """alt-profanity-check's vectorizer and calibrated SVM, loaded from the folder the classifier stage wrote."""

    LABELS = PROFANITY_CHECK_LABELS  # its classes 0 and 1

    def __init__(self, folder: str | Path, *, toxic_label: str, nontoxic_label: str, batch_size: int):
        folder = Path(folder)
        missing = [l for l in (toxic_label, nontoxic_label) if l not in self.LABELS]
        if missing:
            raise ValueError(f"classifier labels {list(self.LABELS)} lack {missing}")
        self.vectorizer = joblib.load(folder / PROFANITY_CHECK_FILES[0])
        self.svm = joblib.load(folder / PROFANITY_CHECK_FILES[1])
        self.toxic, self.nontoxic = self.LABELS.index(toxic_label), self.LABELS.index(nontoxic_label)
        self.batch_size = batch_size

    def logits(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        out = []
        for start in tqdm(range(0, len(texts), self.batch_size), desc="toxicity", disable=not progress,
                          leave=False):
            probs = self.svm.predict_proba(self.vectorizer.transform(list(texts[start:start + self.batch_size])))
            out.append(np.log(np.clip(probs, _PROB_FLOOR, 1 - _PROB_FLOOR)))
        return np.concatenate(out) if out else np.zeros((0, len(self.LABELS)))


def load_toxicity_scorer(path: str | Path, params: ClassifierParams, *, device: str) -> ToxicityScorer:
    """The classifier saved at ``path`` (by the classifier stage), scoring as ``params`` say."""
    if (Path(path) / PROFANITY_CHECK_FILES[0]).exists():
        return ProfanityCheckScorer(path, toxic_label=params.toxic_label, nontoxic_label=params.nontoxic_label,
                                    batch_size=params.batch_size)
    model, tokenizer = load_classifier(path, device=device)
    return ToxicityScorer.from_params(model, tokenizer, params)
