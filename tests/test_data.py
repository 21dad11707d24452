import json

import pytest

from helpers import DIALOGSUM, SAMPLE
from summarizer.data import (DataError, data_stats, dialogue_id, dialogue_overlap, group_references, load_local_splits,
                             load_splits, sample_dialogues)

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


# --------------------------------------------------------------------------------------------------------------------
# Inputs that broke, as a new user gave them.


def _with_latin1_byte(tmp_path, fmt):
    """Five train rows, the fifth with "thé" written as Latin-1 (one byte 0xe9), as an Excel export would."""
    rows = [dict(ROW, id=f"train_{i}") for i in range(5)]
    rows[4]["dialogue"] = "#Person1#: Tea?\n#Person2#: A thé, please."
    write_folder(tmp_path, rows, fmt)
    path = tmp_path / f"train.{fmt}"
    raw = path.read_bytes()
    for written in ("thé".encode(), b"th\\u00e9"):  # csv writes UTF-8; json.dumps escapes it
        raw = raw.replace(written, b"th\xe9")
    assert raw.count(b"\xe9") == 1
    path.write_bytes(raw)
    return path


# The line an editor shows: in the csv, a header and two lines per row (each dialogue holds a newline).
@pytest.mark.parametrize("fmt, where", [("jsonl", "line 5"), ("csv", "line 11")])
def test_a_byte_that_is_not_utf8_is_named_with_its_line(tmp_path, fmt, where):
    path = _with_latin1_byte(tmp_path, fmt)
    with pytest.raises(DataError) as err:
        load_local_splits(tmp_path)
    message = str(err.value)
    assert message.startswith(f"{path}: {where} is not UTF-8: byte 0xe9 at column ")
    assert "#Person2#: A th'. Save the file as UTF-8" in message
    assert "\n" not in message


def test_prepare_data_stage_says_it_in_one_line(tmp_path, params):
    """The breaking input through the stage: exit 1, one line naming file, line and byte, no traceback."""
    import subprocess
    import sys

    from helpers import ROOT, write_params

    folder = tmp_path / "data"
    folder.mkdir()
    path = _with_latin1_byte(folder, "jsonl")
    params["data"]["source"] = str(folder)
    p = write_params(tmp_path / "params.yaml", params)
    proc = subprocess.run([sys.executable, str(ROOT / "stages/prepare_data.py"), "--params", str(p),
                           "--out", str(tmp_path / "out"), "--metrics", str(tmp_path / "m.json")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "UnicodeDecodeError" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{path}: line 5 is not UTF-8: byte 0xe9" in lines[0]


@pytest.mark.parametrize("same_text", [True, False])
def test_an_id_in_two_splits_is_refused_as_such(tmp_path, same_text):
    """A train row whose id is a test id: the message says the same id is in two splits (it spoke of dialogue text).
    """
    test_row = json.loads((SAMPLE / "test.jsonl").read_text().splitlines()[0])
    row = dict(test_row) if same_text else dict(ROW, id=test_row["id"])
    write_folder(tmp_path, [ROW, row])
    with pytest.raises(DataError, match=rf"the same id '{test_row['id']}' is in two splits, train and test"):
        load_splits(str(tmp_path), "main")


def test_a_reference_of_a_test_dialogue_in_train_is_refused(tmp_path):
    """``test_0_4`` in train is another reference of the test dialogue ``test_0``: the same dialogue in two splits."""
    test_row = json.loads((SAMPLE / "test.jsonl").read_text().splitlines()[0])
    other = test_row["id"].rsplit("_", 1)[0] + "_9"
    write_folder(tmp_path, [ROW, dict(ROW, id=other)])
    with pytest.raises(DataError, match=rf"the same id '{test_row['id'].rsplit('_', 1)[0]}' is in two splits"):
        load_splits(str(tmp_path), "main")


def test_dialogue_text_in_two_splits_is_counted_and_recorded(tmp_path, caplog):
    """Leakage whatever the ids: a test dialogue copied into train under a train id, with other spacing and case."""
    test_rows = [json.loads(line) for line in (SAMPLE / "test.jsonl").read_text().splitlines()]
    leaked = dict(ROW, id="train_99", dialogue="  " + test_rows[0]["dialogue"].upper().replace(" ", "  "))
    write_folder(tmp_path, [ROW, leaked])
    splits = load_splits(str(tmp_path), "main")
    with caplog.at_level("WARNING"):
        overlap = dialogue_overlap(splits)
    assert overlap == {"train_validation": 0, "train_test": 1, "validation_test": 0}
    assert "1 test dialogue(s) have the same text as a train dialogue" in caplog.text
    assert data_stats(splits)["dialogues_in_two_splits"]["train_test"] == 1
    assert dialogue_overlap(load_local_splits(SAMPLE)) == {"train_validation": 0, "train_test": 0,
                                                           "validation_test": 0}
