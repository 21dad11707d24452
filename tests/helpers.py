"""What tests share besides fixtures: the project's paths and its params with the demo's tiny-model overrides.

Tests import it as ``helpers`` (pyproject's pytest ``pythonpath`` puts tests/, scripts/ and the root on sys.path).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from demo import deep_merge

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DIALOGSUM = SHARED / "dialogsum"
LAB2_CSV = SHARED / "lab2-outputs" / "dialogue-summary-training-results.csv"
SAMPLE = ROOT / "sample_data" / "dialogsum-mini"


def tiny_params() -> dict:
    """params.yaml with the demo's overrides: tiny random models, the shipped sample data, CPU."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw = deep_merge(raw, yaml.safe_load((ROOT / "demo" / "params-overrides.yaml").read_text()))
    raw["data"]["source"] = str(SAMPLE)
    return raw


def write_params(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def with_this_python(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this interpreter's folder first on PATH, so that `python` in dvc.yaml's commands, `dvc` and
    `make` run in the environment the tests run in (an unactivated venv included)."""
    return env | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}



def reset_accelerate() -> None:
    """Forget accelerate's process-wide device and precision (a stage sets them once; a test module may differ)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def perturbed_lora_adapter(base: Path, lora_params, folder: Path, scale: float = 0.5) -> Path:
    """A LoRA adapter over ``base`` that changes the model (B drawn away from its zero init, as training would),
    saved to ``folder``: an untrained adapter is the identity, and tests of what an adapter does need one that
    does something."""
    import torch

    from summarizer.modeling import load_summarizer
    from summarizer.training import wrap_model

    model = wrap_model(load_summarizer(base), "lora", lora_params, ".")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    model.save_pretrained(folder)
    return folder
