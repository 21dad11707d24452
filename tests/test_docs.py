"""Every shell command shown in README.md and docs/ names what exists: Makefile targets and variables, scripts and
their flags, the CLI's flags, pytest paths and markers, DVC subcommands and the params `-S` sets. Nothing is run
(several commands take an hour); a renamed target, flag, file or param key fails here.

Also: the README stays a two-screen entry point, and every docs page it maps exists.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from helpers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)
# Programs whose arguments are not this project's to check.
OTHER_PROGRAMS = {"source", "cp", "git", "pip", "cd", "export"}
DVC = {"repro": set(), "status": set(), "push": set(), "pull": set(), "fetch": set(),
       "exp": {"run", "show", "pull", "push", "apply"},
       "metrics": {"diff", "show"}, "plots": {"diff", "show"}, "queue": {"start", "status", "logs"},
       "remote": {"add", "modify"}}
MARKERS = {"slow", "gpu"}


def shell_commands() -> list[tuple[str, str]]:
    """(file, command) for every command of every fenced shell block: comments dropped, `&&`, `;` and `|` split."""
    out = []
    for path in DOCS:
        for block in FENCE.findall(path.read_text(encoding="utf-8")):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():  # a line continued with \ is one command
                line = re.sub(r"\s+#.*$", "", line).strip()
                if not line or line.startswith("#"):
                    continue
                for command in re.split(r"&&|;|\|", line):
                    if command.strip():
                        out.append((path.relative_to(ROOT).as_posix(), command.strip()))
    return out


def _makefile():
    text = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", text, re.M))
    variables = set(re.findall(r"^([A-Z_]+)\s*\??=", text, re.M)) | set(re.findall(r"\$\(([A-Z_]+)\)", text))
    return targets, variables


def _params_keys() -> set[str]:
    def walk(node, prefix=""):
        for key, value in node.items():
            yield prefix + key
            if isinstance(value, dict):
                yield from walk(value, prefix + key + ".")

    return set(walk(yaml.safe_load((ROOT / "params.yaml").read_text())))


def _flags_exist(flags: list[str], *sources: Path) -> list[str]:
    text = "".join(p.read_text() for p in sources)
    return [f for f in flags if f'"{f}"' not in text]


def check(command: str) -> str | None:
    """None when the command names what exists, else what does not."""
    words = shlex.split(command)
    while words and re.match(r"^[A-Z_]+=", words[0]):  # environment assignments
        words.pop(0)
    if not words:  # a shell variable set for the commands that follow
        return None
    program, args = words[0], words[1:]
    flags = [a.split("=")[0] for a in args if a.startswith("--")]
    if program in OTHER_PROGRAMS:
        return None
    if program == "make":
        targets, variables = _makefile()
        bad = [a for a in args if "=" not in a and a not in targets]
        bad += [a.split("=")[0] for a in args if "=" in a and a.split("=")[0] not in variables]
        return f"make: no target or variable {bad}" if bad else None
    if program == "summarizer":
        if args[:1] != ["summarize"]:
            return f"summarizer: no subcommand {args[:1]}"
        missing = _flags_exist(flags, ROOT / "src/summarizer/cli.py")
        return f"summarizer summarize: no flags {missing}" if missing else None
    if program == "bash":  # a script of the project's, or the one the GPU bundle writes
        generated = args[:1] == [".bundle/run.sh"] and '"run.sh"' in (ROOT / "scripts/gpu_bundle.py").read_text()
        return None if generated or (args and (ROOT / args[0]).exists()) else f"no script {args[:1]}"
    if program in ("python", "python3"):
        if args[:2] == ["-m", "venv"] or args[:1] == ["-c"]:
            return None
        if args[:2] == ["-m", "pytest"]:
            paths = [a for a in args[2:] if a.startswith("tests")]
            missing = [p for p in paths if not (ROOT / p.split("::")[0]).exists()]
            rest = args[2:]
            if "-m" in rest:
                words_ = set(re.findall(r"\w+", rest[rest.index("-m") + 1])) - {"not", "and", "or"}
                missing += sorted(words_ - MARKERS)
            return f"pytest: no {missing}" if missing else None
        if args[:1] == ["-m"]:
            module = ROOT / "src" / (args[1].replace(".", "/") + ".py")
            if not module.exists():
                return f"no module {args[1]}"
            missing = _flags_exist(flags, module, ROOT / "src/summarizer/cli.py")
            return f"{args[1]}: no flags {missing}" if missing else None
        script = ROOT / args[0]
        if not script.exists():
            return f"no script {args[0]}"
        shared = [ROOT / "benchmarks/benchmarks_common.py", ROOT / "src/summarizer/stage.py"]
        missing = _flags_exist(flags, script, *shared)
        return f"{args[0]}: no flags {missing}" if missing else None
    if program == "dvc":
        sub = args[0]
        if sub not in DVC or (DVC[sub] and (len(args) < 2 or args[1] not in DVC[sub])):
            return f"dvc: not a subcommand this project documents: {args[:2]}"
        keys = _params_keys()
        sets = [args[i + 1].split("=")[0] for i, a in enumerate(args) if a == "-S"]
        unknown = [k for k in sets if k not in keys]
        return f"dvc -S: no params {unknown}" if unknown else None
    if program == "sky":
        return _check_sky(args)
    return f"unknown program {program!r}: check it here or list it in OTHER_PROGRAMS"


def _check_sky(args: list[str]) -> str | None:
    """SkyPilot: the subcommands the docs use; a task file that exists, and `--env` names it declares."""
    if args[0] in ("status", "logs", "down"):
        return None
    if args[0] != "launch":
        return f"sky: not a subcommand this project documents: {args[0]}"
    tasks = [a for a in args[1:] if a.endswith(".yaml")]
    if len(tasks) != 1 or not (ROOT / tasks[0]).exists():
        return f"sky launch: no task file {tasks}"
    declared = yaml.safe_load((ROOT / tasks[0]).read_text()).get("envs", {})
    names = [args[i + 1].split("=")[0] for i, a in enumerate(args) if a == "--env"]
    unknown = [n for n in names if n not in declared]
    if unknown:
        return f"sky launch: {tasks[0]} declares no env {unknown}"
    exp_args = [args[i + 1].split("=", 1)[1] for i, a in enumerate(args) if a == "--env" and
                args[i + 1].startswith("EXP_ARGS=")]
    return next(filter(None, (check(f"dvc exp run {a}") for a in exp_args)), None)  # its -S keys


@pytest.mark.parametrize("where,command", shell_commands(), ids=[f"{w}:{c[:40]}" for w, c in shell_commands()])
def test_documented_command_names_what_exists(where, command):
    assert check(command) is None, f"{where}: `{command}`: {check(command)}"


def test_the_checker_catches_what_it_should():
    assert check("make no-such-target")
    assert check("make demo NOSUCHVAR=1")
    assert check("python benchmarks/generation_backends.py --no-such-flag")
    assert check("python scripts/nope.py")
    assert check("dvc exp run -S no.such.key=1")
    assert check("dvc exp nope")
    assert check("summarizer summarize --nope x.txt")
    assert check("HF_HUB_OFFLINE=1 python -m pytest -m 'not slowest'")
    assert check("rm -rf /")
    assert check("bash .bundle/nope.sh") and check("bash scripts/nope.sh")
    assert check("sky launch configs/nope.yaml") and check("sky launch configs/skypilot.yaml --env NOPE=1")
    assert check("sky launch configs/skypilot.yaml --env EXP_ARGS='-S no.such=1'")
    assert check("sky launch configs/skypilot.yaml --env EXP_NAME=a --env EXP_ARGS='-S lr=1e-3'") is None
    assert check("dvc exp run -S lora.lr=1e-3") is None and check("make demo DATA=x") is None


def test_readme_is_two_screens_and_maps_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    linked = set(re.findall(r"\(docs/([\w-]+\.md)\)", readme))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert linked == pages, (linked ^ pages)


def test_make_app_passes_the_host_and_port_through():
    """Serving a remote GPU box: `make app HOST=0.0.0.0 PORT=8080` reaches the app's --host / --port (issue 36)."""
    import subprocess

    dry = subprocess.run(["make", "-n", "app", "HOST=0.0.0.0", "PORT=8080", "MODELS=.laptop/models"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "-m summarizer.app --models .laptop/models --host 0.0.0.0 --port 8080" in dry
    plain = subprocess.run(["make", "-n", "app"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "--host" not in plain and "--port" not in plain  # app.host / app.port from params.yaml then
    ws = subprocess.run(["make", "-n", "app", "WORKSPACE=.laptop"], cwd=ROOT, capture_output=True, text=True,
                        check=True).stdout
    assert "--workspace .laptop" in ws and "--models" not in ws  # the workspace's params and models (item 8)
