from helpers import ROOT
from summarizer.config import load_params
from summarizer.io import read_jsonl
from summarizer.modeling import load_tokenizer
from summarizer.prompts import build_prompt
from summarizer.tokenization import tokenize_rows

TEMPLATE = load_params(ROOT / "params.yaml").prompt.template


def test_labels_unpadded_and_truncation_counted(tiny_workspace):
    tok = load_tokenizer(tiny_workspace / "models/base")
    rows = read_jsonl(tiny_workspace / "data/prepared/train.jsonl")[:8]
    full = [len(tok(build_prompt(r["dialogue"], TEMPLATE))["input_ids"]) for r in rows]
    cap = sorted(full)[4]  # about half the prompts exceed it
    features, stats = tokenize_rows(rows, tok, TEMPLATE, max_source_tokens=cap, max_target_tokens=1000)
    lengths = [len(f["input_ids"]) for f in features]
    assert all(l == n if n <= cap else cap - 3 <= l <= cap for l, n in zip(lengths, full))  # cut by whole chars
    assert stats["truncated_source_share"] == sum(n > cap for n in full) / len(rows) > 0
    assert stats["truncated_target_share"] == 0
    labels = [f["labels"] for f in features]
    assert len({len(l) for l in labels}) > 1, "labels must not be padded to one length"
    assert all(tok.pad_token_id not in l and -100 not in l for l in labels)
    assert all(f["input_ids"][-1] == tok.eos_token_id and f["labels"][-1] == tok.eos_token_id for f in features)
    assert tok.decode(features[0]["labels"], skip_special_tokens=True).strip() == rows[0]["summary"]


def test_truncation_keeps_the_instruction(tiny_workspace):
    """A dialogue over the budget loses its end; the prompt still ends with the template's "Summary: "."""
    from summarizer.modeling import load_tokenizer
    from summarizer.tokenization import tokenize_rows

    tok = load_tokenizer(tiny_workspace / "models/base")
    template = "Summarize the following conversation.\n\n{dialogue}\n\nSummary: "
    rows = [{"id": "x", "dialogue": "#Person1#: " + "I went to the market and bought apples. " * 80,
             "summary": "Shopping."}]
    features, stats = tokenize_rows(rows, tok, template, 64, 16)
    ids = features[0]["input_ids"]
    suffix = tok("\n\nSummary: ")["input_ids"]  # ends with </s>
    assert len(ids) <= 64 and stats["truncated_source_share"] == 1.0
    assert ids[-len(suffix) + 1:] == suffix[-len(suffix) + 1:]
    assert tok.decode(ids, skip_special_tokens=True).rstrip().endswith("Summary:")
