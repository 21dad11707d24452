"""The commit each Hub download stands for: resolved before anything is downloaded, recorded, and tracked by DVC.

``data.revision``, ``model.revision`` and ``classifier.revision`` may be branch names (``main``). A branch moves;
DVC compares files, not the Hub. So stage ``hub_revisions`` (``always_changed``) resolves every revision to its
commit on each ``dvc repro`` and writes one small file per download; ``prepare_data``, ``base_model`` and
``classifier`` depend on their file and download *that commit*. When upstream moves, the file changes and exactly
what depends on it reruns; when it does not, the file is byte-identical and nothing reruns. The commit is also in
each stage's metrics.

Resolution: a 40-hex revision is a commit already. Otherwise the Hub is asked (``HfApi.repo_info``); offline
(``HF_HUB_OFFLINE=1``) or unreachable, the local caches answer as the libraries would: huggingface_hub's
``refs/<branch>`` file, then, for a dataset, the newest commit folder of ``datasets``' own cache (what
``load_dataset`` takes offline, load.py ``CachedDatasetModuleFactory``). Found nowhere, the commit is null and the
download stage uses the branch as before, saying so.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from summarizer.config import is_hub_id

log = logging.getLogger(__name__)

COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Resolved:
    name: str  # the Hub id, folder or built-in name, as the params give it
    revision: str | None  # as the params give it (None where there is no Hub repository)
    commit: str | None  # the commit the revision pointed to (None: not from the Hub, or unresolved)
    how: str  # pinned | hub | cache | unresolved | not-hub

    def tracked(self) -> dict:
        """What the stage writes for DVC: without ``how``, so that resolving online or from the cache to the same
        commit leaves the file byte-identical (no rerun)."""
        return {k: v for k, v in asdict(self).items() if k != "how"}

    def load_revision(self) -> str | None:
        """What to download: the commit when known, else the params' revision."""
        return self.commit or self.revision


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def _cached_ref(repo_id: str, revision: str, repo_type: str) -> str | None:
    from huggingface_hub import constants

    ref = Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{repo_id.replace('/', '--')}" / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else ""
    return commit if COMMIT.match(commit) else None


def _cached_dataset_commit(repo_id: str) -> str | None:
    """The newest ``<commit>`` folder of ``datasets``' cache for ``repo_id``
    (``<cache>/<org>___<name>/<config>/<version>/<commit>/``)."""
    from datasets import config as datasets_config

    root = Path(datasets_config.HF_DATASETS_CACHE) / repo_id.replace("/", "___")
    found = [p for p in root.glob("*/*/*") if p.is_dir() and COMMIT.match(p.name)] if root.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime).name if found else None


def _ask_hub(repo_id: str, revision: str, repo_type: str) -> str | None:
    from huggingface_hub import HfApi

    try:
        return HfApi().repo_info(repo_id, revision=revision, repo_type=repo_type).sha
    except Exception as err:  # noqa: BLE001 — offline, a proxy, a rate limit: the caches may still answer
        log.warning("could not ask the Hub for %s %s at %s (%s); trying the local cache", repo_type, repo_id,
                    revision, type(err).__name__)
        return None


def resolve(name: str, revision: str, repo_type: str, *, key: str) -> Resolved:
    """``name`` at ``revision`` (params key ``key``, for the messages); ``repo_type`` model or dataset."""
    if Path(name).is_dir() or not is_hub_id(name):
        return Resolved(name, None, None, "not-hub")
    if COMMIT.match(revision):
        return Resolved(name, revision, revision, "pinned")
    commit, how = (None, "") if _offline() else (_ask_hub(name, revision, repo_type), "hub")
    if commit is None:
        commit, how = _cached_ref(name, revision, repo_type), "cache"
    if commit is None and repo_type == "dataset":
        commit = _cached_dataset_commit(name)
    if commit is None:
        log.warning("%s: %s is a branch name and its commit could not be resolved (offline, not cached): the "
                    "download takes whatever %s is and DVC cannot see it move", key, revision, revision)
        return Resolved(name, revision, None, "unresolved")
    log.warning("%s: %s is a branch name; it points to %s now and that commit is what is downloaded and recorded. "
                "Pin it (%s: %s) so that a teammate's clone gets the same %s.", key, revision, commit, key, commit,
                "data" if repo_type == "dataset" else "weights")
    return Resolved(name, revision, commit, how)


def recorded(path: str | Path | None, name: str, revision: str) -> Resolved:
    """What stage hub_revisions recorded for ``name`` at ``revision`` (``path``: its file); without the file (a stage
    run by hand), the params' revision as it is. A file for another name or revision is stale: refused."""
    import json

    from summarizer.errors import ConfigError

    if path is None:
        return Resolved(name, revision, revision if COMMIT.match(revision) else None, "params")
    found = Resolved(**json.loads(Path(path).read_text()), how="recorded")
    if found.name != name or (found.revision is not None and found.revision != revision):
        raise ConfigError(f"{path} records {found.name} at {found.revision}, but the params ask for {name} at "
                          f"{revision}: run stage hub_revisions first (dvc repro does)")
    return found
