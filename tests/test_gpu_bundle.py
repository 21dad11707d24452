"""The offline bundle for the air-gapped GPU machine (issue 37): what it ships and what it leaves to the image.
Building it needs the package index (`make gpu-bundle`); these tests need none."""

import json

from helpers import ROOT, SAMPLE
from gpu_bundle import (FORCED, LEFT_OUT, RUN_SH, closure, data_cut, image_clashes, read_image, requirements,
                        wanted)


def _meta(name, version, *requires):
    return {"name": name, "version": version, "requires_dist": list(requires)}


def test_the_bundle_ships_what_the_image_lacks_and_the_pins_the_classifier_needs():
    image = read_image()
    assert image["transformers"] == "5.17.0" and "torch" in image and "peft" in image
    packages = wanted(requirements(), image)
    assert {"trl", "dvc", "dvclive", "datasets", "alt-profanity-check", "rouge-score"} <= set(packages)
    assert not set(packages) & LEFT_OUT  # torch, ctranslate2, gradio, ...
    assert FORCED <= set(packages)  # scikit-learn, joblib (the SVM's pickles), transformers (5.17 lacks what we use)
    assert "numpy" not in packages and "pandas" not in packages  # the image's serve


def test_the_walk_stops_at_the_images_packages():
    installs = {"trl": _meta("trl", "0.11.4", "torch>=1.4.0", "tyro>=0.5.11", "wandb; extra == 'benchmark'"),
                "torch": _meta("torch", "2.11.0", "nvidia-cublas-cu12; platform_system == 'Linux'"),
                "nvidia-cublas-cu12": _meta("nvidia-cublas-cu12", "12.8"),
                "tyro": _meta("tyro", "1.0.17", "typeguard"), "typeguard": _meta("typeguard", "4.6.1"),
                "wandb": _meta("wandb", "1.0")}
    image = {"torch": "2.11.0"}
    assert closure(["trl"], installs, image) == {"trl": "0.11.4", "typeguard": "4.6.1", "tyro": "1.0.17"}


def test_a_shipped_package_that_needs_another_version_of_an_image_package_is_a_clash():
    metadata = [_meta("datasets", "5.2.0", "huggingface-hub<3.0,>=1.31.0", "numpy>=1.17"),
                _meta("newer", "1.0", "transformers>=5.20; python_version >= '3.10'"),
                _meta("old-python-only", "1.0", "numpy<2; python_version < '3.8'")]
    image = {"huggingface-hub": "1.33.0", "numpy": "2.5.2", "transformers": "5.17.0"}
    assert image_clashes(metadata, image) == ["newer 1.0 needs transformers>=5.20, the image has transformers 5.17.0"]


def test_the_data_cut_is_the_checks_own_selection(tmp_path):
    counts = data_cut(SAMPLE, tmp_path / "cut")
    rows = {s: [json.loads(x) for x in (tmp_path / "cut" / f"{s}.jsonl").read_text().splitlines()] for s in counts}
    assert counts["train"] == len(rows["train"]) > 0 and counts["test"] % 3 == 0  # whole test dialogues
    original = {json.loads(x)["id"]: x for x in (SAMPLE / "train.jsonl").read_text().splitlines() if x.strip()}
    assert all(json.dumps(r, ensure_ascii=False) == original[r["id"]] or r == json.loads(original[r["id"]])
               for r in rows["train"])


def test_the_machine_command_installs_offline_beside_the_machines_torch():
    assert "--no-index --no-deps" in RUN_SH and "--target" in RUN_SH  # no network, no upgrade of torch & co.
    assert "scripts/gpu_check.py --data" in RUN_SH and "gpu-check.json" in RUN_SH and "gpu-check.log" in RUN_SH
    assert (ROOT / "Makefile").read_text().count("gpu-bundle") >= 2
    # the stages' `python` is the interpreter run.sh was given (found by the rehearsal: another `python` on PATH)
    assert 'exec "%s"' in RUN_SH and 'export PATH="$WRAP:' in RUN_SH
