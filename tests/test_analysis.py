"""Error-analysis flags on hand-made examples."""

from summarizer.analysis import (Thresholds, content_words, flag_example, hallucinated_entities, is_length_issue,
                                 is_missing_key_info, is_speaker_confusion, missing_share)

T = Thresholds(min_words=5, max_length_ratio=2.0, missing_info=0.7)
DIALOGUE = "#Person1#: Can I book a table for four on Friday?\n#Person2#: Yes, at 7:45, Mr. Romero."
REF = "#Person1# books a table for four on Friday under the name Romero."


def test_length_issue():
    assert is_length_issue("Too short.", [REF], T)
    assert not is_length_issue("#Person1# books a table for Friday evening.", [REF], T)
    assert is_length_issue(" ".join(["word"] * 30), [REF], T)  # over twice the reference's 11 words


def test_missing_key_info():
    assert content_words(REF) == {"books", "table", "four", "friday", "name", "romero"}  # "under" is a stop word
    assert missing_share("They talk about the weather.", REF) == 1.0
    assert is_missing_key_info("They talk about the weather today.", [REF], T)
    assert not is_missing_key_info("#Person1# books a table for four on Friday.", [REF], T)
    # the closest of several references counts
    assert not is_missing_key_info("They talk about the weather.", [REF, "They talk about the weather."], T)


def test_hallucinated_entity():
    assert hallucinated_entities("#Person1# books a table for Saturday with Alice.", DIALOGUE, [REF]) == \
        ["Saturday", "Alice"]
    assert hallucinated_entities("The table for four is booked under Romero at 7:45.", DIALOGUE, [REF]) == []
    assert hallucinated_entities("They meet at 9 on Friday.", DIALOGUE, [REF]) == ["9"]
    assert hallucinated_entities("Friday works.", DIALOGUE, [REF]) == []  # sentence-initial: not counted


def test_speaker_confusion():
    assert is_speaker_confusion("#Person2# books a table for four.", [REF])
    assert not is_speaker_confusion("#Person1# books a table for four.", [REF])
    refs = ["#Person1# asks about the price and #Person2# explains it.", "#Person2# explains the price."]
    assert is_speaker_confusion("#Person1# explains the price.", refs)
    assert not is_speaker_confusion("#Person2# explains the price to #Person1#.", refs)


def test_flag_example_and_empty():
    flags = flag_example("", DIALOGUE, [REF], T)
    assert flags == {"empty": True, "length_issue": True, "missing_key_info": True, "hallucinated_entity": False,
                     "speaker_confusion": False}
    good = flag_example("#Person1# books a table for four on Friday under the name Romero.", DIALOGUE, [REF], T)
    assert not any(good.values())
