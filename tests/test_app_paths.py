"""Which models the chatbot serves, with which params, and which variant it offers first (issue 36, item 8): a
workspace's models with the workspace's own params — the root params.yaml's classifier labels failed every request
on `.laptop/models` — and the best trained variant preselected, not `base`."""

import json
import shutil

import pytest

from helpers import tiny_params, write_params
from summarizer.app import preferred_variant, resolve_paths, summarize_request
from summarizer.config import load_params
from summarizer.service import InputError, Summarizer

DIALOGUE = "#Person1#: Could you bring the report tomorrow?\n#Person2#: Sure, I will bring it at nine."


@pytest.fixture(scope="module")
def laptop_like(tiny_workspace, tmp_path_factory):
    """A workspace as `make laptop` leaves it: its own params (alt-profanity-check, labels offensive /
    not_offensive), models/ and metrics/, inside a project whose params.yaml names the Hub's classifier."""
    from stages import classifier

    project = tmp_path_factory.mktemp("project")
    write_params(project / "params.yaml", tiny_params())  # classifier labels hate / nothate
    ws = project / ".laptop"
    raw = tiny_params()
    raw["classifier"] |= {"name": "alt-profanity-check", "toxic_label": "offensive",
                          "nontoxic_label": "not_offensive", "batch_size": 64}
    raw["generation"]["max_new_tokens"] = 8
    ws.mkdir()
    params = write_params(ws / "params.yaml", raw)
    shutil.copytree(tiny_workspace / "models/base", ws / "models/base")
    classifier.main(["--params", str(params), "--train", str(tiny_workspace / "data/prepared/train.jsonl"),
                     "--out", str(ws / "models/classifier"), "--metrics", str(ws / "metrics/classifier.json")])
    return project


def test_a_workspace_is_served_with_its_own_params(laptop_like):
    ws = laptop_like / ".laptop"
    assert resolve_paths(None, None, str(ws)) == (ws / "params.yaml", ws / "models", ws / "metrics")
    # --models inside a workspace brings the workspace's params (make app MODELS=.laptop/models)
    assert resolve_paths(None, str(ws / "models"), None, root=laptop_like)[0] == ws / "params.yaml"
    # ... unless --params says otherwise
    assert resolve_paths("other.yaml", str(ws / "models"), None, root=laptop_like)[0].name == "other.yaml"
    # nothing given, the project has no models: the workspace that has them
    assert resolve_paths(None, None, None, root=laptop_like)[1] == laptop_like / ".laptop" / "models"
    with pytest.raises(InputError, match="not a workspace"):
        resolve_paths(None, None, str(laptop_like / "nowhere"))


def test_a_request_on_the_workspace_returns_a_summary_and_the_root_params_do_not(laptop_like):
    params, models, _ = resolve_paths(None, None, None, root=laptop_like)
    cfg = load_params(params)
    summary, toxicity, latency, note, history = summarize_request(Summarizer(cfg, models), cfg, DIALOGUE, "base",
                                                                  8, False, 1.0, 1, [])
    assert not note.startswith("⚠️"), note
    assert 0.0 <= float(toxicity) <= 1.0 and latency.endswith(" s") and len(history) == 2
    root = load_params(laptop_like / "params.yaml")  # the bug: the root's labels against the workspace's classifier
    *_, note, _ = summarize_request(Summarizer(root, models), root, DIALOGUE, "base", 8, False, 1.0, 1, [])
    assert note.startswith("⚠️")


def test_the_best_trained_variant_is_offered_first(tmp_path):
    for variant, rouge_l in (("base", 0.14), ("full", 0.27), ("lora", 0.23), ("ppo", 0.30)):
        path = tmp_path / "eval" / f"{variant}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"per_reference": {"rougeL": {"mean": rouge_l}}}))
    assert preferred_variant(["base", "full", "lora"], tmp_path) == "full"
    assert preferred_variant(["base", "full", "lora", "ppo"], tmp_path) == "ppo"
    assert preferred_variant(["base", "lora", "full"], None) == "full"  # no metrics: full
    assert preferred_variant(["base", "lora"], None) == "lora"
    assert preferred_variant(["base"], tmp_path) == "base" and preferred_variant([], None) == "base"
