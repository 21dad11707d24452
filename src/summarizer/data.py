"""DialogSum: loading (Hub or local folder), validation, deterministic sampling and length statistics.

A normalised row is ``{"id", "dialogue_id", "dialogue", "summary", "topic"}``. ``dialogue_id`` groups the test
split's three reference summaries per dialogue (Hub ids ``test_N_1``, ``test_N_2``, ``test_N_3`` → ``test_N``);
rows of other splits are their own dialogue.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from summarizer.config import is_hub_id
from summarizer.errors import DataError
from summarizer.io import rounded

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
COLUMNS = ("id", "dialogue", "summary", "topic")
_MULTI_REF_ID = re.compile(r"^(?P<dialogue>.+_\d+)_(?P<ref>\d+)$")


def dialogue_id(row_id: str) -> str:
    """``test_12_3`` → ``test_12``; any id without a reference suffix is its own dialogue."""
    match = _MULTI_REF_ID.match(row_id)
    return match.group("dialogue") if match else row_id


# --------------------------------------------------------------------------------------------------------------------
# Reading


# "utf-8-sig" reads files with or without the byte-order mark that Excel and many Windows tools write; plain
# "utf-8" would glue it to the first column's name ("\ufeffid").
ENCODING = "utf-8-sig"


def _check_utf8(path: Path) -> None:
    """One line naming the file, the line and the byte that is not UTF-8 (Python's own error gives a position in
    the whole file, e.g. "position 2236", which no editor shows)."""
    raw = path.read_bytes()
    try:
        raw.decode(ENCODING)
    except UnicodeDecodeError as err:
        line_start = raw.rfind(b"\n", 0, err.start) + 1
        lineno = raw.count(b"\n", 0, err.start) + 1
        before = raw[max(line_start, err.start - 20):err.start].decode(ENCODING, errors="replace")
        raise DataError(f"{path}: line {lineno} is not UTF-8: byte 0x{raw[err.start]:02x} at column "
                        f"{err.start - line_start + 1}, after {before!r}. Save the file as UTF-8 "
                        "(a Latin-1 or Windows-1252 export writes é as this one byte)") from None


def _read_jsonl_rows(path: Path) -> list[tuple[str, dict]]:
    _check_utf8(path)
    rows = []
    with open(path, encoding=ENCODING) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            line = line.rstrip("\r\n")  # else a line cut inside a string reads as "Invalid control character"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {lineno} is not valid JSON: {_describe_json_error(err, line)}. "
                                "A line cut short, or an unescaped newline or tab inside a text?") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}: line {lineno} is not a JSON object")
            rows.append((f"line {lineno}", obj))
    return rows


def _describe_json_error(err: json.JSONDecodeError, line: str) -> str:
    """``Unterminated string starting at column 26, found '"#Person1#: Hi'``: json's own messages end in "at"."""
    found = line[err.pos:err.pos + 20]
    where = f"{err.msg}{'' if err.msg.endswith(' at') else ' at'} column {err.colno}"
    return f"{where}, found {found!r}" if found else f"{where}, the end of the line"


def _read_csv_rows(path: Path) -> list[tuple[str, dict]]:
    _check_utf8(path)
    with open(path, encoding=ENCODING, newline="") as fh:
        # Row numbers count data rows from 1, as a spreadsheet would show them below the header.
        return [(f"row {i}", dict(r)) for i, r in enumerate(csv.DictReader(fh), start=1)]


def normalize_newlines(text: str) -> str:
    """Windows (\\r\\n) and old Mac (\\r) line ends → \\n, so a CRLF file gives the same prompts as a Unix one."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _case_hint(missing: Sequence[str], raw: dict) -> str:
    by_lower = {str(k).strip().lower(): k for k in raw}
    close = [f"{by_lower[m]!r} for {m!r}" for m in missing if m in by_lower]
    return f" (column names are case-sensitive: rename {', '.join(close)})" if close else ""


def validate_rows(located: Sequence[tuple[str, dict]], source: str) -> list[dict]:
    """Check columns, emptiness and unique ids; return normalised rows. Errors name ``source`` and the row."""
    seen: dict[str, str] = {}
    rows = []
    for where, raw in located:
        missing = [c for c in COLUMNS if c not in raw]
        if missing:
            raise DataError(f"{source}: {where} is missing column(s) {', '.join(missing)}; "
                            f"found {', '.join(map(repr, raw)) or 'none'}{_case_hint(missing, raw)}")
        row = {c: raw[c] for c in COLUMNS}
        for col in COLUMNS:
            if not isinstance(row[col], str):
                raise DataError(f"{source}: {where} column {col} must be text, got {row[col]!r}")
            row[col] = normalize_newlines(row[col])
        for col in ("id", "dialogue", "summary"):
            if not row[col].strip():
                raise DataError(f"{source}: {where} (id {row['id']!r}) has an empty {col}")
        if row["id"] in seen:
            raise DataError(f"{source}: {where} repeats id {row['id']!r} (first seen at {seen[row['id']]})")
        seen[row["id"]] = where
        rows.append({"id": row["id"], "dialogue_id": dialogue_id(row["id"]), "dialogue": row["dialogue"],
                     "summary": row["summary"], "topic": row["topic"]})
    if not rows:
        raise DataError(f"{source}: no rows")
    _check_groups(rows, source)
    return rows


def _check_groups(rows: list[dict], source: str) -> None:
    """The rows of one multi-reference dialogue must carry the same dialogue text."""
    first: dict[str, dict] = {}
    for row in rows:
        head = first.setdefault(row["dialogue_id"], row)
        if head["dialogue"] != row["dialogue"]:
            raise DataError(f"{source}: id {row['id']!r} belongs to dialogue {row['dialogue_id']!r} "
                            f"but its dialogue text differs from {head['id']!r}")


def load_local_splits(folder: str | Path) -> dict[str, list[dict]]:
    """Read ``train``, ``validation`` and ``test`` as ``.jsonl`` (preferred) or ``.csv`` from a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data.source {str(folder)!r} is not a folder")
    splits = {}
    for split in SPLITS:
        jsonl, csv_path = folder / f"{split}.jsonl", folder / f"{split}.csv"
        if jsonl.exists():
            splits[split] = validate_rows(_read_jsonl_rows(jsonl), str(jsonl))
        elif csv_path.exists():
            splits[split] = validate_rows(_read_csv_rows(csv_path), str(csv_path))
        else:
            raise DataError(f"{folder}: no {split}.jsonl or {split}.csv")
    return splits


_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def _loaded_commit(ds) -> str | None:
    """The commit a loaded Hub dataset came from. ``datasets`` caches a Hub dataset under
    ``<name>/<config>/<version>/<commit>/`` (load.py: the module's hash is the commit hash), online and offline."""
    files = next(iter(ds.values())).cache_files
    return Path(files[0]["filename"]).parent.name if files else None


def load_hub_splits(name: str, revision: str) -> dict[str, list[dict]]:
    """Download a DialogSum-layout dataset from the Hugging Face Hub at a pinned revision.

    Offline (``HF_HUB_OFFLINE=1``), ``datasets`` cannot ask the Hub what a revision is and takes its newest cached
    copy of the dataset whatever the revision (load.py, ``CachedDatasetModuleFactory``). So the commit that was
    loaded is checked against a revision pinned as a commit id, and logged for a branch name.
    """
    import datasets

    try:
        ds = datasets.load_dataset(name, revision=revision)
    except Exception as err:  # the Hub raises many types; all mean "could not get it"
        raise DataError(f"could not load dataset {name!r} (revision {revision}) from the Hugging Face Hub: {err}. "
                        "Offline? Point data.source at a local folder, e.g. ../shared/data/dialogsum") from None
    commit = _loaded_commit(ds)
    if _COMMIT.match(revision) and commit and commit != revision:
        raise DataError(f"data.revision pins {name} at {revision}, but the copy found (offline, in the datasets "
                        f"cache) is commit {commit}. Load it once online, or pin {commit} if you reviewed it.")
    log.info("loaded %s at commit %s (data.revision: %s)", name, commit or "unknown", revision)
    splits = {}
    for split in SPLITS:
        if split not in ds:
            raise DataError(f"{name}: the Hub dataset has no {split!r} split (has {', '.join(ds)})")
        located = [(f"row {i + 1}", dict(r)) for i, r in enumerate(ds[split])]
        splits[split] = validate_rows(located, f"{name}[{split}]")
    return splits


def load_splits(source: str, revision: str) -> dict[str, list[dict]]:
    """A local folder if ``source`` is one, else a Hub dataset id; an id may be in one split only."""
    path = Path(source)
    if path.is_dir():
        splits = load_local_splits(path)
    elif is_hub_id(source):
        splits = load_hub_splits(source, revision)
    else:
        raise DataError(f"data.source {source!r} is neither an existing folder nor a Hub id like owner/name")
    check_ids_across_splits(splits, source)
    return splits


def check_ids_across_splits(splits: dict[str, list[dict]], source: str) -> None:
    """The same id (or the same multi-reference dialogue, ``test_0`` of ``test_0_1``) in two splits is refused:
    scores would then be computed on rows the model was trained on, whatever their text."""
    owner: dict[str, str] = {}
    for split in SPLITS:
        for key in dict.fromkeys(k for r in splits[split] for k in (r["id"], r["dialogue_id"])):
            if owner.setdefault(key, split) != split:
                raise DataError(f"{source}: the same id {key!r} is in two splits, {owner[key]} and {split}; "
                                "ids must be unique across train, validation and test")


def _dialogue_key(text: str) -> str:
    """Dialogue text compared across splits: whitespace and case do not make two dialogues different."""
    return " ".join(text.split()).lower()


def dialogue_overlap(splits: dict[str, list[dict]]) -> dict[str, int]:
    """Dialogues whose text is in two splits, whatever their ids (leakage): counted per pair of splits, in
    dialogues of the second split, and warned about. Not refused: a published dataset may have a few, and the reader
    of the scores should know how many."""
    texts = {s: {_dialogue_key(r["dialogue"]) for r in splits[s]} for s in SPLITS}
    overlap = {}
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1:]:
            n = len(texts[first] & texts[second])
            overlap[f"{first}_{second}"] = n
            if n:
                log.warning("%d %s dialogue(s) have the same text as a %s dialogue (leakage: scores on them "
                            "measure memory, not summarization)", n, second, first)
    return overlap


# --------------------------------------------------------------------------------------------------------------------
# Sampling and statistics


def sample_dialogues(rows: list[dict], max_dialogues: int | None, seed: int) -> list[dict]:
    """Keep ``max_dialogues`` whole dialogues (all their reference rows), chosen by seed, in their original order."""
    order = list(dict.fromkeys(r["dialogue_id"] for r in rows))
    if max_dialogues is None or max_dialogues >= len(order):
        return rows
    keep = set(random.Random(seed).sample(order, max_dialogues))
    return [r for r in rows if r["dialogue_id"] in keep]


def group_references(rows: Iterable[dict]) -> dict[str, list[dict]]:
    """dialogue_id → its rows, in first-seen order."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["dialogue_id"]].append(row)
    return dict(groups)


PERCENTILES = (5, 25, 50, 75, 95, 100)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    stats = {f"p{p}": float(np.percentile(arr, p)) for p in PERCENTILES} | {"mean": float(arr.mean())}
    return rounded(stats, 1)  # counts of words and tokens: a tenth is enough


def tokenizer_texts(rows: Iterable[dict]) -> list[str]:
    """The text a tiny model's tokenizer is trained on: every dialogue, then every summary."""
    rows = list(rows)
    return [r["dialogue"] for r in rows] + [r["summary"] for r in rows]


def word_count(text: str) -> int:
    return len(text.split())


def data_stats(splits: dict[str, list[dict]]) -> dict:
    """Rows per split, unique test dialogues and length percentiles in words (tokens come with the tokenize stage)."""
    test_groups = group_references(splits["test"])
    refs = [len(v) for v in test_groups.values()]
    return {
        "rows": {s: len(splits[s]) for s in SPLITS},
        "test_dialogues": len(test_groups),
        "test_references_per_dialogue": {"min": min(refs), "max": max(refs)},
        "dialogue_words": {s: percentiles([word_count(r["dialogue"]) for r in splits[s]]) for s in SPLITS},
        "summary_words": {s: percentiles([word_count(r["summary"]) for r in splits[s]]) for s in SPLITS},
        # Dialogues with the same text in two splits (whitespace and case aside), per pair of splits.
        "dialogues_in_two_splits": dialogue_overlap(splits),
    }


def prepare_splits(source: str, revision: str, seed: int, max_train: int | None, max_validation: int | None,
                   max_test_dialogues: int | None) -> dict[str, list[dict]]:
    """Load, validate and cut the splits deterministically (same seed → same rows, in source order)."""
    splits = load_splits(source, revision)
    log.info("loaded %s", ", ".join(f"{s}: {len(r)} rows" for s, r in splits.items()))
    return {
        "train": sample_dialogues(splits["train"], max_train, seed),
        "validation": sample_dialogues(splits["validation"], max_validation, seed),
        "test": sample_dialogues(splits["test"], max_test_dialogues, seed),
    }
