"""dvc.yaml's deps guard the reruns: each stage lists exactly the library modules its script uses."""

import ast
from pathlib import Path

import pytest
import yaml

from helpers import ROOT

LIBRARY = ROOT / "src" / "summarizer"


def _imported_modules(path: Path) -> set[str]:
    """summarizer modules ``path`` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("summarizer"):
            parts = node.module.split(".")
            if len(parts) == 1:  # from summarizer import x
                found |= {alias.name for alias in node.names if (LIBRARY / f"{alias.name}.py").exists()}
            else:
                found.add(parts[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("summarizer.")}
    return found


def _closure(script: Path) -> set[str]:
    """Every library module the script uses, directly or through other library modules."""
    seen: set[str] = set()
    todo = list(_imported_modules(script))
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_imported_modules(LIBRARY / f"{module}.py"))
    return seen


def _stages():
    doc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    for name, stage in doc["stages"].items():
        stage = stage.get("do", stage)  # foreach stages keep their body under `do`
        yield name, stage


@pytest.mark.parametrize("name,stage", list(_stages()), ids=[n for n, _ in _stages()])
def test_stage_deps_are_the_modules_its_script_imports(name, stage):
    scripts = [d for d in stage["deps"] if str(d).startswith("stages/")]
    assert len(scripts) == 1, f"{name}: one stage script among its deps"
    listed = {Path(d).stem for d in stage["deps"] if str(d).startswith("src/summarizer/")}
    used = _closure(ROOT / scripts[0])
    assert listed == used, f"{name}: missing {sorted(used - listed)}, not used {sorted(listed - used)}"


def test_every_stage_is_checked():
    assert {n for n, _ in _stages()} >= {"check_params", "prepare_data", "base_model", "classifier", "tokenize",
                                           "baseline", "finetune", "detoxify", "evaluate", "references", "compare",
                                           "report"}


def test_detoxify_reruns_for_the_ppo_keys_it_reads_only():
    """ppo.min_eval_dialogues is read by compare alone: listing the whole ppo section under detoxify made a change
    to it rerun PPO. Every other ppo key must be listed, so no change to PPO's settings is missed."""
    import dataclasses

    from summarizer.config import PpoParams

    doc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    listed = {p.removeprefix("ppo.") for p in doc["stages"]["detoxify"]["params"] if str(p).startswith("ppo")}
    assert "ppo" not in listed
    assert listed == {f.name for f in dataclasses.fields(PpoParams)} - {"min_eval_dialogues"}
    assert "ppo.min_eval_dialogues" in doc["stages"]["compare"]["params"]


def test_the_library_has_no_import_cycle():
    """No library module reaches itself through its imports (function-level ones included): ct2 and generation
    imported each other until the backend choice moved to summarizer.backends (issue 35)."""
    graph = {p.stem: _imported_modules(p) - {p.stem} for p in LIBRARY.glob("*.py")}

    def reaches(start: str, target: str) -> bool:
        seen, todo = set(), list(graph.get(start, ()))
        while todo:
            module = todo.pop()
            if module == target:
                return True
            if module not in seen:
                seen.add(module)
                todo.extend(graph.get(module, ()))
        return False

    cycles = sorted(m for m in graph if reaches(m, m))
    assert not cycles, f"modules in an import cycle: {cycles}"
