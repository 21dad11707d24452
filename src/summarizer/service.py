"""Summarize one pasted dialogue with any trained variant: what the Gradio app and the CLI share.

- Input is checked first (empty, too long, binary, no speaker turns) with a message a person can act on.
- Variants are picked by name from a fixed list and resolved under the models folder, so no path from a request
  reaches the file system. Models load on first use and stay loaded.
- A dialogue over the model's input budget is summarized in chunks of whole turns, then the chunk summaries are
  summarized, instead of being silently truncated; the result says so.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from summarizer.config import VARIANTS, GenerationParams, Params
from summarizer.errors import USER_ERRORS
from summarizer.io import rounded
from summarizer.backends import load_generator
from summarizer.generation import TextGenerator
from summarizer.modeling import MODEL_INFO
from summarizer.prompts import build_prompt
from summarizer.tokenization import fitted_prompts, token_lengths
from summarizer.toxicity import ToxicityScorer, load_toxicity_scorer

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# A speaker turn: "#Person1#: ...", "Anna: ...", "Dr. Lee: ...".
_TURN = re.compile(r"^\s*(#[A-Za-z]+\d*#|[A-Z][\w.' -]{0,40}?)\s*:\s*\S", re.MULTILINE)

EXAMPLE_DIALOGUE = """#Person1#: Hi Maya, do you have a minute? The printer on our floor is broken again.
#Person2#: Again? That's the third time this month. What happened?
#Person1#: It jams every time someone prints on both sides, and the client report is due at four.
#Person2#: You can use the one on the second floor. I'll call the technician and ask him to come tomorrow morning.
#Person1#: Thanks. Could you also ask whether we can get a new printer instead of repairing this one?
#Person2#: Sure, I'll bring it up at Friday's budget meeting."""


class InputError(ValueError):
    """A request the app refuses, with a message for the person who sent it."""


def check_dialogue(text: str | None, max_chars: int) -> str:
    """The dialogue, cleaned of surrounding whitespace, or InputError saying what is wrong with it."""
    if text is None or not text.strip():
        raise InputError("Please paste a dialogue: the input is empty.")
    if len(text) > max_chars:
        raise InputError(f"The dialogue has {len(text):,} characters; the limit is {max_chars:,}. "
                         "Please shorten it.")
    controls = sum(1 for ch in text if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and ch not in "\n\r\t")
    if "\x00" in text or "\ufffd" in text or controls > 0.01 * len(text):
        raise InputError("The input looks like binary data, not text. Please paste the dialogue as plain text.")
    turns = _TURN.findall(text)
    if len(turns) < 2:
        raise InputError("No speaker turns found. Write one turn per line as 'Speaker: what they said', "
                         "e.g. '#Person1#: Hello.' then '#Person2#: Hi!'.")
    return text.strip()


def split_turns(dialogue: str) -> list[str]:
    """Whole turns: each starts at a 'Speaker:' line; continuation lines stay with their turn."""
    turns: list[str] = []
    for line in dialogue.splitlines():
        if _TURN.match(line) or not turns:
            turns.append(line)
        elif line.strip():
            turns[-1] += "\n" + line
    return turns


def chunk_turns(turns: Sequence[str], fits: Callable[[str], bool]) -> list[str]:
    """Greedily pack consecutive whole turns into chunks that ``fits`` accepts. A single turn that does not fit on its
    own becomes a chunk by itself (the tokenizer will cut it; the caller reports that)."""
    chunks: list[str] = []
    current: list[str] = []
    for turn in turns:
        candidate = "\n".join([*current, turn])
        if current and not fits(candidate):
            chunks.append("\n".join(current))
            current = [turn]
        else:
            current.append(turn)
    if current:
        chunks.append("\n".join(current))
    return chunks


@dataclass(frozen=True)
class Options:
    max_new_tokens: int
    do_sample: bool = False
    temperature: float = 1.0
    num_beams: int = 1


@dataclass(frozen=True)
class Summary:
    variant: str
    summary: str
    toxicity: float
    latency_s: float
    chunks: int  # 1 unless the dialogue was too long for one pass
    cut_turns: int  # turns too long to fit even alone (truncated by the tokenizer)
    backend: str = "transformers"  # what generated it (generation.backend; prompt tuning is always transformers)

    @property
    def chunked(self) -> bool:
        return self.chunks > 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"chunked": self.chunked, "label": "AI-generated"}


class Summarizer:
    """Lazily loads variants from ``models_dir`` and keeps them; safe to call from several threads."""

    def __init__(self, cfg: Params, models_dir: str | Path = "models", device: str = "cpu",
                 dtype: torch.dtype | None = None):
        self.cfg, self.models_dir, self.device, self.dtype = cfg, Path(models_dir), device, dtype
        self._models: dict[str, TextGenerator] = {}
        self._lock = threading.Lock()
        self._tokenizer = None
        self._scorer: ToxicityScorer | None = None

    def is_tiny_random(self) -> bool:
        """True when the base model is a tiny random one: its summaries mean nothing, and the app says so."""
        info = self.models_dir / "base" / MODEL_INFO
        return info.exists() and json.loads(info.read_text()).get("source") == "tiny-random"

    def available(self) -> list[str]:
        """Variants whose model is present (the base model is needed by all of them)."""
        if not (self.models_dir / "base").is_dir():
            return []
        return [v for v in VARIANTS if (self.models_dir / v).is_dir()]

    def _model(self, variant: str) -> TextGenerator:
        if variant not in VARIANTS:
            raise InputError(f"Unknown model {variant!r}; choose one of {', '.join(VARIANTS)}.")
        if variant not in self.available():
            raise InputError(f"Model {variant!r} has not been trained here yet (no {self.models_dir / variant}); "
                             f"available: {', '.join(self.available()) or 'none — run dvc repro'}.")
        with self._lock:  # one load per variant, even under concurrent first requests
            if variant not in self._models:
                path, base = self.models_dir / variant, self.models_dir / "base"
                # The pipeline's conversion (stage convert) when there is one; else the backend converts now.
                converted = self.models_dir / "ctranslate2" / variant
                log.info("loading %s from %s (%s)", variant, path, self.cfg.generation.backend)
                self._models[variant] = load_generator(
                    path, None if variant == "base" else base,
                    converted if converted.is_dir() else None, params=self.cfg.generation, device=self.device,
                    dtype=self.dtype, attention=self.cfg.model.attention,
                    batch_size=self.cfg.generation.batch_size,
                    max_source_tokens=self.cfg.prompt.max_source_tokens)
            self._tokenizer = self._models[variant].tokenizer  # every variant has the base's tokenizer
            if self._scorer is None and (self.models_dir / "classifier").is_dir():
                self._scorer = load_toxicity_scorer(self.models_dir / "classifier", self.cfg.classifier,
                                                    device=self.device)
            return self._models[variant]

    def _params(self, options: Options) -> GenerationParams:
        return dataclasses.replace(self.cfg.generation, max_new_tokens=options.max_new_tokens,
                                   do_sample=options.do_sample, temperature=options.temperature,
                                   num_beams=options.num_beams)

    def _generate(self, generator: TextGenerator, dialogues: Sequence[str], options: Options,
                  desc: str | None = None) -> list[str]:
        """``desc`` shows a progress bar (tqdm on stderr; the app's page follows it) under that name."""
        params = self._params(options)
        prompts, _ = fitted_prompts(generator.tokenizer, dialogues, self.cfg.prompt.template,
                                    self.cfg.prompt.max_source_tokens)
        return generator.generate(prompts, params, seed=self.cfg.seed, desc=desc or "generating",
                                  progress=desc is not None).texts

    def _fits(self, dialogue: str) -> bool:
        prompt = build_prompt(dialogue, self.cfg.prompt.template)
        return token_lengths(self._tokenizer, [prompt])[0] <= self.cfg.prompt.max_source_tokens

    def summarize(self, text: str, variant: str, options: Options, max_chars: int, progress: bool = False) -> Summary:
        """``progress``: show a bar while the chunks of a long dialogue are summarized."""
        dialogue = check_dialogue(text, max_chars)
        model = self._model(variant)
        start = time.perf_counter()
        chunks, cut = [dialogue], 0
        if not self._fits(dialogue):
            chunks = chunk_turns(split_turns(dialogue), self._fits)
            cut = sum(not self._fits(c) for c in chunks)
        if len(chunks) == 1:
            summary = self._generate(model, chunks, options)[0]
        else:
            log.info("dialogue of %d characters: summarizing %d chunks", len(dialogue), len(chunks))
            partial = self._generate(model, chunks, options,
                                     desc=f"summarizing {len(chunks)} chunks" if progress else None)
            # Summarize the summaries (again in chunks if even they are too long).
            combined = "\n".join(p for p in partial if p)
            while not self._fits(combined) and len(partial) > 1:
                regrouped = chunk_turns(partial, self._fits)
                partial = self._generate(model, regrouped, options,
                                         desc=f"combining {len(regrouped)} summaries" if progress else None)
                combined = "\n".join(p for p in partial if p)
            summary = self._generate(model, [combined], options)[0] if combined else ""
        toxicity = float(self._scorer.toxic_probability([summary])[0]) if self._scorer else float("nan")
        elapsed = time.perf_counter() - start
        # the backend that generated it: CTranslate2 hands the beam searches it cannot reproduce to transformers
        return Summary(variant, summary, rounded(toxicity, 4), rounded(elapsed, 3), len(chunks), cut,
                       model.backend_for(self._params(options)))


def user_message(err: Exception) -> str:
    """The message shown for a refused request; anything unexpected gets a generic one (details go to the log)."""
    if isinstance(err, (InputError, *USER_ERRORS)):
        return str(err)
    log.exception("summarization failed")
    return "Something went wrong while summarizing; the server log has the details."
