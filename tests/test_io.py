"""Atomic writes: an interrupted write leaves the old output or none, and files get the umask's mode."""

import os
import stat

import pytest

from summarizer.io import atomic_dir, atomic_write_text, partial_dir, write_json


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_follow_the_umask(tmp_path, umask):
    """mkstemp's 0600 used to survive the rename: a teammate sharing the workspace or DVC cache could not read."""
    old = os.umask(umask)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        with atomic_dir(tmp_path / "model") as partial:
            atomic_write_text(partial / "config.json", "{}")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "m.json") == 0o666 & ~umask
    assert _mode(tmp_path / "model/config.json") == 0o666 & ~umask


class Boom(Exception):
    pass


def test_failed_text_write_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")

    with pytest.raises(TypeError):
        atomic_write_text(path, None)  # fails inside the write
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_folder_output_appears_only_when_complete(tmp_path):
    out = tmp_path / "models/base"
    with pytest.raises(Boom):
        with atomic_dir(out) as partial:
            (partial / "config.json").write_text("{}")
            assert not out.exists()
            raise Boom  # killed half way through saving
    assert not out.exists() and not partial_dir(out).exists()
    with atomic_dir(out) as partial:
        (partial / "model.safetensors").write_bytes(b"weights")
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
    with atomic_dir(out) as partial:  # a rerun replaces the folder whole: nothing of the old one stays
        (partial / "config.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


def test_a_partial_folder_left_by_a_killed_run_is_discarded(tmp_path):
    out = tmp_path / "model"
    partial_dir(out).mkdir()
    (partial_dir(out) / "half.bin").write_bytes(b"x")
    with atomic_dir(out) as partial:
        (partial / "whole.bin").write_bytes(b"y")
    assert sorted(p.name for p in out.iterdir()) == ["whole.bin"]
