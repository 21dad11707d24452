"""The path every real user takes, run offline: params.yaml's Hub ids and revisions untouched, a Hugging Face cache
seeded with tiny stand-ins under those ids (what a second run on a user's machine finds), HF_HUB_OFFLINE=1, and
prepare_data → base_model / classifier → tokenize through `dvc repro`.

- Models: the hub cache layout (``hub/models--org--name/refs/<branch>`` and ``snapshots/<commit>/``). Each stand-in
  holds only file names its real repository has, with the weights as ``pytorch_model.bin`` only (both real
  repositories have it; whether a pinned commit also has ``model.safetensors`` could not be checked offline), so a
  stage that needs any other file fails here. ``refs/main`` of google/flan-t5-base points to a decoy commit with
  other weights: a stage that ignored the pinned ``model.revision`` would load the decoy.
- The dataset: ``datasets`` does not read the hub cache offline; it reads its own cache of prepared Arrow files
  (``datasets/<org>___<name>/<config>/<version>/<commit>/``), which is seeded here, and it cannot check a revision
  offline (it takes its newest cached copy). That boundary is tested: ``data.revision`` pinned to another commit
  is refused by the stage.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from helpers import ROOT, SAMPLE, with_this_python
from demo import make_workspace
from summarizer.config import TinyRobertaParams, TinyT5Params
from summarizer.data import load_local_splits
from summarizer.modeling import build_tiny_roberta, build_tiny_t5, train_roberta_tokenizer, train_t5_tokenizer

pytestmark = pytest.mark.slow  # dvc repro over a seeded Hugging Face cache

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
DATA_COMMIT = "c" * 40
DECOY_COMMIT = "d" * 40
CLASSIFIER_COMMIT = "e" * 40
# File names of the real repositories that the stand-ins may use (their other files: spiece.model, flax/tf weights,
# README.md, model.safetensors where present). facebook/roberta-hate-speech-dynabench-r4-target is a RoBERTa
# repository of 2021: config, weights, vocab.json and merges.txt are what every such repository has.
T5_FILES = {"config.json", "generation_config.json", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json"}
ROBERTA_FILES = {"config.json", "pytorch_model.bin", "vocab.json", "merges.txt"}


def _texts():
    rows = load_local_splits(SAMPLE)["train"]
    return [r["dialogue"] for r in rows] + [r["summary"] for r in rows]


def _t5_stand_in(folder: Path, seed: int) -> Path:
    tiny = PARAMS["model"]["tiny"]
    tokenizer = train_t5_tokenizer(_texts(), tiny["vocab_size"], PARAMS["prompt"]["max_source_tokens"])
    model = build_tiny_t5(TinyT5Params(**tiny), tokenizer, seed)
    model.config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def _roberta_stand_in(folder: Path) -> Path:
    c = PARAMS["classifier"]
    tokenizer = train_roberta_tokenizer(_texts(), c["tiny"]["vocab_size"], c["max_tokens"])
    model = build_tiny_roberta(TinyRobertaParams(**c["tiny"]), tokenizer, c["max_tokens"], seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    tokenizer.backend_tokenizer.model.save(str(folder))  # vocab.json + merges.txt, as RoBERTa repositories ship
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def _seed_model(hub: Path, repo_id: str, commit: str, files: Path, allowed: set[str], ref: str | None = None):
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in files.iterdir():
        if path.name in allowed:
            shutil.copy2(path, snapshot / path.name)
    assert {p.name for p in snapshot.iterdir()} <= allowed
    if ref:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)


def _seed_dataset(datasets_cache: Path, build: Path, repo_id: str, commit: str):
    """What `load_dataset(repo_id)` leaves in the datasets cache online: Arrow files under the commit it loaded."""
    from datasets.packaged_modules.json.json import Json

    name = repo_id.split("/")[1]
    builder = Json(cache_dir=str(build), dataset_name=name,
                   data_files={s: str(SAMPLE / f"{s}.jsonl") for s in ("train", "validation", "test")})
    builder.download_and_prepare()
    dest = datasets_cache / repo_id.replace("/", "___") / "default" / "0.0.0" / commit
    shutil.copytree(builder.cache_dir, dest)


@pytest.fixture(scope="module")
def hub_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub")
    hf_home = tmp / "hf"
    t5, decoy = _t5_stand_in(tmp / "t5", seed=1), _t5_stand_in(tmp / "t5-decoy", seed=2)
    _seed_model(hf_home / "hub", PARAMS["model"]["name"], PARAMS["model"]["revision"], t5, T5_FILES)
    _seed_model(hf_home / "hub", PARAMS["model"]["name"], DECOY_COMMIT, decoy, T5_FILES, ref="main")
    roberta = _roberta_stand_in(tmp / "roberta")
    assert PARAMS["classifier"]["revision"] == "main"
    _seed_model(hf_home / "hub", PARAMS["classifier"]["name"], CLASSIFIER_COMMIT, roberta, ROBERTA_FILES, ref="main")
    _seed_dataset(hf_home / "datasets", tmp / "build", PARAMS["data"]["source"], DATA_COMMIT)

    work = tmp / "ws"
    make_workspace(ROOT, work, overrides=[], data=None)  # params.yaml exactly as shipped
    assert yaml.safe_load((work / "params.yaml").read_text()) == PARAMS
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env = with_this_python(env | {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                                  "TRANSFORMERS_OFFLINE": "1"})
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro", "tokenize", "classifier"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    return work, env, proc, {"t5": t5, "decoy": decoy, "roberta": roberta}


def _same_weights(saved: Path, stand_in: Path) -> bool:
    ours = load_file(saved / "model.safetensors")
    theirs = torch.load(stand_in / "pytorch_model.bin", weights_only=True)
    return all(torch.equal(tensor, theirs[name]) for name, tensor in ours.items())


def test_stages_run_offline_from_the_seeded_cache(hub_run):
    work, _, proc, _ = hub_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for stage in ("prepare_data", "base_model", "classifier", "tokenize"):
        assert f"Running stage '{stage}'" in proc.stdout
    assert (work / "data/tokenized/train.jsonl").exists()


def test_dataset_rows_come_from_the_hub_id(hub_run):
    work, _, _, _ = hub_run
    data = json.loads((work / "metrics/data.json").read_text())
    assert data["source"] == "knkarthick/dialogsum" and data["rows"] == {"train": 30, "validation": 6, "test": 18}
    prepared = [json.loads(line)["id"] for line in (work / "data/prepared/test.jsonl").read_text().splitlines()]
    assert prepared == [r["id"] for r in load_local_splits(SAMPLE)["test"]]


def test_laptop_profile_without_local_data_reads_the_hub_id(hub_run, tmp_path):
    """`make laptop` with no local DialogSum (issue 36): the profile's workspace keeps data.source, the Hub id, and
    its data stage reads the same rows from the Hugging Face cache as the default path does."""
    _, env, _, _ = hub_run
    work = tmp_path / "laptop"
    make_workspace(ROOT, work, [ROOT / "configs/laptop.yaml"], None)
    assert yaml.safe_load((work / "params.yaml").read_text())["data"]["source"] == PARAMS["data"]["source"]
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro", "prepare_data"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads((work / "metrics/data.json").read_text())
    assert data["source"] == "knkarthick/dialogsum" and data["rows"] == {"train": 30, "validation": 6, "test": 18}


def test_base_model_is_the_pinned_commit_not_main(hub_run):
    work, _, _, stand_ins = hub_run
    info = json.loads((work / "metrics/models/base.json").read_text())
    assert info["source"] == "hub" and info["revision"] == PARAMS["model"]["revision"]
    assert _same_weights(work / "models/base", stand_ins["t5"])
    assert not _same_weights(work / "models/base", stand_ins["decoy"])


def test_classifier_is_loaded_from_its_revision(hub_run):
    work, _, _, stand_ins = hub_run
    assert _same_weights(work / "models/classifier", stand_ins["roberta"])
    info = json.loads((work / "metrics/models/classifier.json").read_text())
    assert info["source"] == "hub" and info["name"] == PARAMS["classifier"]["name"]


def test_dataset_pinned_to_another_commit_is_refused_offline(hub_run, tmp_path):
    work, env, _, _ = hub_run
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["data"]["revision"] = "f" * 40
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, "stages/prepare_data.py", "--params", str(tmp_path / "params.yaml"),
                           "--out", str(tmp_path / "prepared"), "--metrics", str(tmp_path / "data.json")],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert f"data.revision pins knkarthick/dialogsum at {'f' * 40}, but the copy found" in proc.stderr
    assert f"is commit {DATA_COMMIT}" in proc.stderr and "Traceback" not in proc.stderr


def test_the_commit_of_every_download_is_recorded(hub_run):
    """Issue 36, item 3: each branch resolved to the commit that was downloaded, in the metrics DVC tracks."""
    work, _, _, _ = hub_run
    assert json.loads((work / "metrics/data.json").read_text())["commit"] == DATA_COMMIT
    assert json.loads((work / "metrics/models/classifier.json").read_text())["commit"] == CLASSIFIER_COMMIT
    assert json.loads((work / "metrics/models/base.json").read_text())["commit"] == PARAMS["model"]["revision"]


def test_a_moved_branch_reruns_only_what_downloads_from_it(hub_run, tmp_path):
    """Last in this module: it moves the classifier's refs/main. Nothing moved: nothing reruns; then the branch moves
    to another commit (other weights) and the classifier alone is downloaded again, at the new commit."""
    work, env, _, stand_ins = hub_run
    repro = [sys.executable, "-m", "dvc", "repro", "tokenize", "classifier"]
    again = subprocess.run(repro, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "Running stage 'hub_revisions'" in again.stdout  # always_changed: resolved on every repro
    assert not [s for s in ("prepare_data", "base_model", "classifier", "tokenize")
                if f"Running stage '{s}'" in again.stdout], again.stdout
    moved = "f" * 40
    other = _roberta_stand_in(tmp_path / "roberta2")
    state = torch.load(other / "pytorch_model.bin", weights_only=True)
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in state.items()}, other / "pytorch_model.bin")
    _seed_model(Path(env["HF_HOME"]) / "hub", PARAMS["classifier"]["name"], moved, other, ROBERTA_FILES, ref="main")
    proc = subprocess.run(repro, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Running stage 'classifier'" in proc.stdout
    assert not [s for s in ("prepare_data", "base_model", "tokenize") if f"Running stage '{s}'" in proc.stdout]
    assert json.loads((work / "metrics/models/classifier.json").read_text())["commit"] == moved
    assert _same_weights(work / "models/classifier", other)
