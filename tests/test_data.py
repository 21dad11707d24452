import json

import pytest

from helpers import DIALOGSUM, SAMPLE
from summarizer.data import (DataError, data_stats, dialogue_id, group_references, load_local_splits, load_splits,
                             sample_dialogues)

ROW = {"id": "train_0", "dialogue": "#Person1#: Hi.\n#Person2#: Hello.", "summary": "They greet.", "topic": "greeting"}


def write_folder(tmp_path, train_rows, fmt="jsonl"):
    """A DialogSum-layout folder whose validation and test come from the sample, train from ``train_rows``."""
    for split in ("validation", "test"):
        (tmp_path / f"{split}.jsonl").write_text((SAMPLE / f"{split}.jsonl").read_text())
    if fmt == "jsonl":
        (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    else:
        import csv

        with open(tmp_path / "train.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(train_rows[0]))
            writer.writeheader()
            writer.writerows(train_rows)
    return tmp_path


def test_dialogue_id():
    assert dialogue_id("test_12_3") == "test_12"
    assert dialogue_id("train_7") == "train_7"
    assert dialogue_id("dev_0") == "dev_0"


def test_sample_loads_with_reference_groups():
    splits = load_local_splits(SAMPLE)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [30, 6, 18]
    groups = group_references(splits["test"])
    assert len(groups) == 6 and all(len(rows) == 3 for rows in groups.values())


def test_csv_source_with_multiline_dialogue(tmp_path):
    rows = [ROW, dict(ROW, id="train_1", dialogue="#Person1#: A, \"quoted\" line.\n#Person2#: Yes.")]
    splits = load_local_splits(write_folder(tmp_path, rows, fmt="csv"))
    assert splits["train"][1]["dialogue"] == rows[1]["dialogue"]


BAD = [
    ([{k: v for k, v in ROW.items() if k != "summary"}], "train.jsonl: line 1 is missing column(s) summary"),
    ([ROW, dict(ROW, id="train_1", dialogue="   ")], "train.jsonl: line 2 (id 'train_1') has an empty dialogue"),
    ([dict(ROW, summary="")], "train.jsonl: line 1 (id 'train_0') has an empty summary"),
    ([ROW, ROW], "train.jsonl: line 2 repeats id 'train_0' (first seen at line 1)"),
    ([dict(ROW, summary=None)], "train.jsonl: line 1 column summary must be text"),
]


@pytest.mark.parametrize("rows,message", BAD)
def test_bad_data_names_file_and_row(tmp_path, rows, message):
    with pytest.raises(DataError) as err:
        load_local_splits(write_folder(tmp_path, rows))
    assert message in str(err.value)


def test_bad_csv_names_row(tmp_path):
    rows = [ROW, dict(ROW, id="train_1"), dict(ROW, id="train_2", summary=" ")]
    with pytest.raises(DataError, match=r"train.csv: row 3 \(id 'train_2'\) has an empty summary"):
        load_local_splits(write_folder(tmp_path, rows, fmt="csv"))


def test_invalid_json_line(tmp_path):
    write_folder(tmp_path, [ROW])
    (tmp_path / "train.jsonl").write_text(json.dumps(ROW) + "\n{not json\n")
    with pytest.raises(DataError, match="train.jsonl: line 2 is not valid JSON: Expecting property name enclosed in "
                                        "double quotes at column 2, found 'not json'"):
        load_local_splits(tmp_path)


def test_truncated_json_line_says_where_and_what(tmp_path):
    """A line cut inside a string: the old message stopped at "Invalid control character at"."""
    write_folder(tmp_path, [ROW])
    line = json.dumps(ROW)
    (tmp_path / "train.jsonl").write_text(line[:40] + "\n" + line[40:] + "\n")
    with pytest.raises(DataError) as err:
        load_local_splits(tmp_path)
    assert str(err.value).endswith("train.jsonl: line 1 is not valid JSON: Unterminated string starting at column "
                                   "31, found '\"#Person1#'. A line cut short, or an unescaped newline or tab inside "
                                   "a text?")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_byte_order_mark_is_read(tmp_path, fmt):
    """Excel and many Windows tools start a UTF-8 file with a BOM; it used to become part of the column "id"."""
    write_folder(tmp_path, [ROW, dict(ROW, id="train_1")], fmt=fmt)
    path = tmp_path / f"train.{fmt}"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    rows = load_local_splits(tmp_path)["train"]
    assert [r["id"] for r in rows] == ["train_0", "train_1"]


def test_crlf_csv_gives_unix_newlines_inside_dialogues(tmp_path):
    write_folder(tmp_path, [ROW], fmt="csv")
    path = tmp_path / "train.csv"
    path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    assert b"Hi.\r\n#Person2#" in path.read_bytes()
    assert load_local_splits(tmp_path)["train"][0]["dialogue"] == ROW["dialogue"]


def test_missing_column_lists_the_columns_found_and_hints_at_case(tmp_path):
    rows = [{("Summary" if k == "summary" else k): v for k, v in ROW.items()}]
    with pytest.raises(DataError) as err:
        load_local_splits(write_folder(tmp_path, rows, fmt="csv"))
    assert str(err.value).endswith("train.csv: row 1 is missing column(s) summary; found 'id', 'dialogue', 'Summary', "
                                   "'topic' (column names are case-sensitive: rename 'Summary' for 'summary')")


def test_missing_split_file(tmp_path):
    write_folder(tmp_path, [ROW])
    (tmp_path / "test.jsonl").unlink()
    with pytest.raises(DataError, match="no test.jsonl or test.csv"):
        load_local_splits(tmp_path)


def test_inconsistent_reference_group(tmp_path):
    write_folder(tmp_path, [ROW])
    rows = [json.loads(l) for l in (tmp_path / "test.jsonl").read_text().splitlines()]
    rows[1]["dialogue"] += " (edited)"
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="'test_0_2' belongs to dialogue 'test_0'"):
        load_local_splits(tmp_path)


def test_bad_source_is_neither_folder_nor_hub_id():
    with pytest.raises(DataError, match="neither an existing folder nor a Hub id"):
        load_splits("./no/such/folder", "main")


def test_sample_dialogues_keeps_whole_groups_deterministically():
    test = load_local_splits(SAMPLE)["test"]
    a, b = sample_dialogues(test, 2, seed=1), sample_dialogues(test, 2, seed=1)
    assert a == b and len(a) == 6
    assert len(group_references(a)) == 2
    assert [r["id"] for r in a] == sorted((r["id"] for r in a), key=[r["id"] for r in test].index)  # source order
    assert sample_dialogues(test, 2, seed=2) != a or len(test) <= 6
    assert sample_dialogues(test, None, seed=1) == test


@pytest.mark.skipif(not DIALOGSUM.is_dir(), reason="../shared/data/dialogsum is not available")
def test_real_dialogsum_counts():
    stats = data_stats(load_local_splits(DIALOGSUM))
    assert stats["rows"] == {"train": 12460, "validation": 500, "test": 1500}
    assert stats["test_dialogues"] == 500
    assert stats["test_references_per_dialogue"] == {"min": 3, "max": 3}
