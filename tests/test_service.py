"""The app's and CLI's shared core: input checks, whole-turn chunking of long dialogues, variant selection."""


import pytest

from helpers import tiny_params
from summarizer.config import parse_params
from summarizer.service import (EXAMPLE_DIALOGUE, InputError, Options, Summarizer, check_dialogue, chunk_turns,
                                split_turns)

CFG = parse_params(tiny_params())


@pytest.mark.parametrize("text,message", [
    ("", "input is empty"),
    ("   \n\t ", "input is empty"),
    ("#Person1#: hi\n#Person2#: " + "a" * 200, "limit is 100"),
    ("#Person1#: hi\x00\x01\x02\n#Person2#: yo", "binary data"),
    ("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary data"),
    ("Just a paragraph of prose with no speakers at all.", "No speaker turns found"),
])
def test_bad_input_gets_a_clear_message(text, message):
    with pytest.raises(InputError, match=message):
        check_dialogue(text, max_chars=100)


def test_good_input_passes():
    assert check_dialogue("  Anna: Hi!\nDr. Lee: Hello.  ", 100) == "Anna: Hi!\nDr. Lee: Hello."
    assert check_dialogue(EXAMPLE_DIALOGUE, 20_000) == EXAMPLE_DIALOGUE


def test_split_and_chunk_whole_turns():
    text = "#Person1#: one\ncontinued\n#Person2#: two\n#Person1#: three\n#Person2#: four"
    turns = split_turns(text)
    assert turns == ["#Person1#: one\ncontinued", "#Person2#: two", "#Person1#: three", "#Person2#: four"]
    chunks = chunk_turns(turns, lambda c: len(c) <= 40)
    assert chunks == ["#Person1#: one\ncontinued\n#Person2#: two", "#Person1#: three\n#Person2#: four"]
    assert "\n".join(chunks) == text  # nothing lost, nothing cut
    assert chunk_turns(["x" * 50, "y"], lambda c: len(c) <= 10) == ["x" * 50, "y"]  # an oversized turn stands alone


@pytest.fixture(scope="module")
def service(tiny_workspace):
    return Summarizer(CFG, tiny_workspace / "models")


def test_variants_come_from_a_fixed_list(service):
    assert service.available() == ["base"]  # the tiny workspace trains nothing
    assert service.is_tiny_random()
    for bad in ("../../etc", "/tmp", "lora", "models/base"):
        with pytest.raises(InputError):
            service.summarize(EXAMPLE_DIALOGUE, bad, Options(max_new_tokens=4), max_chars=20_000)


def test_short_dialogue_is_one_pass(service):
    result = service.summarize(EXAMPLE_DIALOGUE, "base", Options(max_new_tokens=6), max_chars=20_000)
    assert result.chunks == 1 and not result.chunked and result.cut_turns == 0
    assert 0 <= result.toxicity <= 1 and result.latency_s > 0
    assert result.to_dict()["label"] == "AI-generated"


def test_long_dialogue_is_summarized_in_chunks_of_whole_turns(service, monkeypatch):
    turns = [f"#Person{1 + i % 2}#: This is turn number {i} about the weekly budget meeting and the new printer."
             for i in range(120)]
    long_dialogue = "\n".join(turns)
    seen = []
    original = service._generate

    def recording(model, dialogues, options, desc=None):
        seen.append(list(dialogues))
        # the tiny random model tends to say nothing; give each chunk a visible summary so the second pass shows
        return [out or f"Summary of part {i}." for i, out in enumerate(original(model, dialogues, options, desc))]

    monkeypatch.setattr(service, "_generate", recording)
    result = service.summarize(long_dialogue, "base", Options(max_new_tokens=6), max_chars=20_000)
    assert result.chunked and result.chunks > 1 and result.cut_turns == 0
    first_pass = seen[0]
    assert len(first_pass) == result.chunks
    assert "\n".join(first_pass) == long_dialogue  # every turn, whole, in order
    assert all(service._fits(chunk) for chunk in first_pass)
    assert len(seen) == 2 and len(seen[1]) == 1  # then one pass over the chunk summaries
    assert result.summary


class _EmptyService:
    """A service whose model says nothing, as the tiny random models often do."""

    def summarize(self, text, variant, options, max_chars, progress=False):
        from summarizer.service import Summary

        return Summary(variant, "", 0.5, 0.01, 1, 0)

    def is_tiny_random(self):
        return True


def test_empty_summary_is_said_on_the_page(params):
    from summarizer.app import summarize_request
    from summarizer.config import parse_params

    cfg = parse_params(params)
    summary, _, _, note, history = summarize_request(_EmptyService(), cfg, EXAMPLE_DIALOGUE, "base", 32, False, 1.0,
                                                     1, [])
    assert summary == "" and note == "The model returned an empty summary\\."  # Markdown-escaped, shown literally


def test_empty_summary_is_said_by_the_cli(params, tmp_path, monkeypatch, capsys):
    from helpers import write_params
    from summarizer import cli

    monkeypatch.setattr(cli, "Summarizer", lambda *a, **k: _EmptyService())
    path = tmp_path / "d.txt"
    path.write_text(EXAMPLE_DIALOGUE)
    assert cli.main(["summarize", "--params", str(write_params(tmp_path / "p.yaml", params)), str(path)]) == 0
    err = capsys.readouterr().err
    assert "note: the model returned an empty summary." in err and "tiny random ones" in err


def test_each_backend_serves_the_same_greedy_summary(tiny_workspace):
    """generation.backend reaches the app and the CLI: CTranslate2 (reading the convert stage's output) and
    transformers give the same greedy summary, and the result says which produced it."""
    import dataclasses

    results = {}
    for backend in ("transformers", "ctranslate2"):
        cfg = dataclasses.replace(CFG, generation=dataclasses.replace(CFG.generation, backend=backend))
        service = Summarizer(cfg, tiny_workspace / "models")
        results[backend] = service.summarize(EXAMPLE_DIALOGUE, "base", Options(max_new_tokens=12), max_chars=20_000)
    assert {b: r.backend for b, r in results.items()} == {"transformers": "transformers",
                                                         "ctranslate2": "ctranslate2"}
    assert results["transformers"].summary == results["ctranslate2"].summary
