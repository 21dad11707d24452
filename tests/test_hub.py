"""The commit each Hub download stands for (issue 36, item 3): resolved from the Hub or, offline, from the caches
the libraries read; written so that DVC reruns a download exactly when its branch moved."""

import json

import pytest

from summarizer import hub
from summarizer.errors import ConfigError

A, B = "a" * 40, "b" * 40


@pytest.fixture
def caches(tmp_path, monkeypatch):
    from datasets import config as datasets_config
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets_config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    return tmp_path


def _ref(caches, repo_type, repo_id, branch, commit):
    ref = caches / "hub" / f"{repo_type}s--{repo_id.replace('/', '--')}" / "refs" / branch
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)


def test_a_commit_is_pinned_and_never_asked_for(monkeypatch):
    monkeypatch.setattr(hub, "_ask_hub", lambda *a: pytest.fail("a pinned commit needs no Hub"))
    assert hub.resolve("google/flan-t5-base", A, "model", key="model.revision") == \
        hub.Resolved("google/flan-t5-base", A, A, "pinned")


@pytest.mark.parametrize("name", ["pretrain-small-t5", "alt-profanity-check", "."])
def test_built_in_names_and_folders_have_no_revision(name):
    assert hub.resolve(name, "main", "model", key="model.revision").tracked() == \
        {"name": name, "revision": None, "commit": None}


def test_a_branch_resolves_online_and_warns_to_pin_it(monkeypatch, caplog):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "_ask_hub", lambda repo, rev, kind: A if (repo, rev) == ("org/clf", "main") else None)
    resolved = hub.resolve("org/clf", "main", "model", key="classifier.revision")
    assert (resolved.commit, resolved.how) == (A, "hub")
    assert f"classifier.revision: main is a branch name; it points to {A}" in caplog.text
    assert f"Pin it (classifier.revision: {A})" in caplog.text


def test_offline_a_branch_resolves_from_the_hub_cache_refs(caches, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "_ask_hub", lambda *a: pytest.fail("offline: the Hub is not asked"))
    _ref(caches, "model", "org/clf", "main", A)
    assert hub.resolve("org/clf", "main", "model", key="classifier.revision").commit == A


def test_offline_a_dataset_resolves_to_the_newest_commit_in_the_datasets_cache(caches, monkeypatch):
    import os

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for commit, mtime in ((A, 1_000), (B, 2_000)):
        folder = caches / "datasets" / "org___dialogs" / "default" / "0.0.0" / commit
        folder.mkdir(parents=True)
        os.utime(folder, (mtime, mtime))
    assert hub.resolve("org/dialogs", "main", "dataset", key="data.revision").commit == B  # what datasets loads


def test_unresolvable_branch_says_so_and_downloads_the_branch(caches, monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = hub.resolve("org/clf", "main", "model", key="classifier.revision")
    assert (resolved.commit, resolved.load_revision()) == (None, "main")
    assert "could not be resolved" in caplog.text


def test_the_tracked_file_changes_exactly_when_the_branch_moves(caches, monkeypatch):
    """Online or from the cache, the same commit writes the same bytes (no rerun); a moved branch another file."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "_ask_hub", lambda *a: A)
    online = hub.resolve("org/clf", "main", "model", key="k").tracked()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _ref(caches, "model", "org/clf", "main", A)
    assert hub.resolve("org/clf", "main", "model", key="k").tracked() == online
    _ref(caches, "model", "org/clf", "main", B)
    assert hub.resolve("org/clf", "main", "model", key="k").tracked() != online


def test_a_stage_downloads_the_recorded_commit_and_refuses_a_stale_record(tmp_path):
    record = tmp_path / "classifier.json"
    record.write_text(json.dumps({"name": "org/clf", "revision": "main", "commit": A}))
    assert hub.recorded(record, "org/clf", "main").load_revision() == A
    with pytest.raises(ConfigError, match="run stage hub_revisions first"):
        hub.recorded(record, "org/other", "main")
    assert hub.recorded(None, "org/clf", "main").load_revision() == "main"  # a stage run by hand
