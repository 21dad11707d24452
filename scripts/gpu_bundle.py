"""`make gpu-bundle`: one folder to upload to an air-gapped GPU machine, with `make gpu-check` ready to run there.

The machine (configs/gpu-image.txt): Python 3.12, PyTorch with CUDA, transformers, peft, accelerate and the
packages that file lists; no network. The folder (default ``.bundle/``, git-ignored) holds:

- ``wheels/``: every package of requirements.txt the check needs that the image lacks, with what they need, for
  CPython 3.12 on manylinux x86-64, one version each, resolved by pip against the image's known versions
  (constraints) so that nothing installed clashes with what is there. Left out on purpose: torch, tokenizers,
  peft, accelerate (the image's serve), CTranslate2 (a 42 MB wheel needing CUDA 12's cuBLAS: the
  check records the transformers backend and why), the chatbot (gradio) and the developer tools (ruff,
  playwright). rouge-score ships only an sdist: its wheel is built here. alt-profanity-check's SVM loads only
  with the scikit-learn and joblib it pins, and the image's transformers 5.17 lacks what the code uses, so those
  three are shipped whatever the image has.
- ``dialogsum/``: the rows of DialogSum the check uses (configs/gpu-check.yaml's cut, by the params' seed).
- ``project/``: the project's files (as git tracks them).
- ``run.sh``: the one command for the machine (below).

    python scripts/gpu_bundle.py [--out .bundle] [--data ../shared/data/dialogsum]   # here, with the index
    bash .bundle/run.sh [OUT_DIR]                                                     # there, offline

``run.sh`` installs the wheels with ``pip install --no-index --no-deps --target`` into a folder of its own (the
machine's torch and site-packages untouched), puts it first on PYTHONPATH and runs the GPU check on the bundled
data, writing ``gpu-check.json`` and ``gpu-check.log`` to OUT_DIR (default: $OUT, else the bundle folder).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

from demo import profile_params, project_files  # noqa: E402

LIMIT_MIB = 64
PYTHON = "3.12"
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
# Never shipped (see the module docstring).
LEFT_OUT = {"torch", "tokenizers", "peft", "accelerate", "ctranslate2", "gradio", "playwright", "ruff",
            "vl-convert-python", "pytest", "sentencepiece"}
# Shipped even where the image has them: the pickled SVM of alt-profanity-check loads with these versions only; and
# the tested transformers, since the image's 5.17 does not serve the code (the rehearsal: its
# Seq2SeqTrainingArguments has no activation_checkpointing, the name 5.23 uses).
FORCED = {"scikit-learn", "joblib", "transformers"}
# Pure-Python packages published as sdists only: their wheels are built here first (py3-none-any), so that the
# resolution for the machine, binary-only, can take them. antlr4-python3-runtime is hydra-core's (dvc's), pinned
# by it to 4.9.*.
SDIST_ONLY = {"rouge-score": "0.1.2", "antlr4-python3-runtime": "4.9.3"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_image(path: Path = ROOT / "configs/gpu-image.txt") -> dict[str, str | None]:
    """{normalised name: version or None} of the packages the GPU image has."""
    out: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[normalise(name)] = version or None
    return out


def requirements(path: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """{normalised name: pinned version} of requirements.txt."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[normalise(name)] = version.strip()
    return pins


def wanted(pins: dict[str, str], image: dict[str, str | None]) -> dict[str, str]:
    """The pinned packages to resolve for the machine: what the check needs and the image lacks (or FORCED)."""
    return {n: v for n, v in pins.items()
            if n not in LEFT_OUT and (n not in image or n in FORCED)}


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def _platform_args() -> list[str]:
    out = ["--python-version", PYTHON, "--implementation", "cp", "--only-binary=:all:"]
    for p in PLATFORMS:
        out += ["--platform", p]
    return out


def resolve(packages: dict[str, str], image: dict[str, str | None], work: Path) -> dict[str, str]:
    """Every distribution ``packages`` need on the machine ({name: version}), resolved by pip for CPython 3.12 on
    manylinux, minus what the image has (not FORCED). The image's known versions are then checked against what
    the shipped packages require of them: a clash stops the build, naming both (pip cannot take the image's
    versions as constraints: some, like its numpy, are builds the index does not have)."""
    built = work / "built"
    for name, version in SDIST_ONLY.items():
        _pip("wheel", "--quiet", "--no-deps", "--no-binary", name, "-w", str(built), f"{name}=={version}")
    report = work / "report.json"
    _pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report), "--target",
         str(work / "target"), "--find-links", str(built), *_platform_args(),
         *[f"{n}=={v}" for n, v in packages.items()])
    installs = {normalise(i["metadata"]["name"]): i["metadata"] for i in json.loads(report.read_text())["install"]}
    shipped = closure(list(packages), installs, image)
    clashes = image_clashes([installs[n] for n in shipped],
                            {n: v for n, v in image.items() if v and n not in shipped})
    if clashes:
        sys.exit("the image's packages do not satisfy the bundle's: " + "; ".join(clashes))
    return shipped


def closure(top: list[str], installs: dict[str, dict], image: dict[str, str | None]) -> dict[str, str]:
    """What the ``top`` packages need ({name: version} from pip's report, ``installs``), walked down their
    requirements and stopped at every package the image has (not FORCED): the needs of the image's own packages
    (torch's CUDA libraries, say) are the image's business."""
    shipped: dict[str, str] = {}
    todo = list(top)
    while todo:
        name = todo.pop()
        if name in shipped or name not in installs or (name in image and name not in FORCED):
            continue
        shipped[name] = installs[name]["version"]
        todo += [normalise(r.name) for r in _requirements(installs[name])]
    return dict(sorted(shipped.items()))


MARKER_ENV = {"python_version": PYTHON, "python_full_version": f"{PYTHON}.0", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
              "os_name": "posix", "extra": ""}


def _requirements(meta: dict) -> list:
    """A distribution's requirements that apply on the machine (Python 3.12, Linux x86-64, no extras)."""
    from packaging.requirements import Requirement

    reqs = [Requirement(spec) for spec in meta.get("requires_dist") or []]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(MARKER_ENV)]


def image_clashes(metadata: list[dict], image_versions: dict[str, str]) -> list[str]:
    """Requirements of the shipped distributions that the image's version of a package it keeps does not meet."""
    out = []
    for meta in metadata:
        for req in _requirements(meta):
            have = image_versions.get(normalise(req.name))
            if have and not req.specifier.contains(have, prereleases=True):
                out.append(f"{meta['name']} {meta['version']} needs {req.name}{req.specifier}, "
                           f"the image has {req.name} {have}")
    return out


def download(resolved: dict[str, str], wheels: Path, work: Path) -> None:
    """The wheels of ``resolved``: downloaded for the machine, or copied from the ones built from sdists."""
    wheels.mkdir(parents=True, exist_ok=True)
    built = {normalise(w.name.split("-")[0]): w for w in (work / "built").glob("*.whl")}
    for name in set(resolved) & set(built):
        shutil.copy2(built[name], wheels / built[name].name)
    _pip("download", "--quiet", "--no-deps", "-d", str(wheels), *_platform_args(),
         *[f"{n}=={v}" for n, v in resolved.items() if n not in built])


def data_cut(source: Path, out: Path) -> dict[str, int]:
    """The rows of ``source`` the check keeps (configs/gpu-check.yaml's cut by the params' seed), as they are
    there, so that the check's own cut of the bundle keeps them all."""
    from summarizer.config import parse_params
    from summarizer.data import prepare_splits

    raw = profile_params(yaml.safe_load((ROOT / "params.yaml").read_text()), [ROOT / "configs/gpu-check.yaml"],
                         str(source))
    cfg = parse_params(raw)
    d = cfg.data
    kept = prepare_splits(str(source), d.revision, cfg.seed, d.max_train_samples, d.max_validation_samples,
                          d.max_test_dialogues)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, rows in kept.items():
        ids = {r["id"] for r in rows}
        lines = [line for line in (source / f"{split}.jsonl").read_text().splitlines()
                 if line.strip() and json.loads(line)["id"] in ids]
        (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
        counts[split] = len(lines)
    return counts


RUN_SH = r"""#!/usr/bin/env bash
# The GPU check on an air-gapped machine, from this bundle alone (scripts/gpu_bundle.py wrote it).
#   bash run.sh [OUT_DIR]    -> OUT_DIR/gpu-check.json, OUT_DIR/gpu-check.log
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT_DIR="${1:-${OUT:-$HERE}}"
mkdir -p "$OUT_DIR"
SITE="${BUNDLE_SITE:-/tmp/summarizer-site}"
PY="${PYTHON:-python3}"
start=$(date +%s)
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$HERE"/wheels/*.whl
echo "installed $(ls "$HERE"/wheels | wc -l) wheels into $SITE in $(( $(date +%s) - start )) s"
export PYTHONPATH="$SITE:$HERE/project/src:$HERE/project/scripts${PYTHONPATH:+:$PYTHONPATH}"
# dvc.yaml's stages run `python ...`: on such an image `python` may be missing or another interpreter than the one
# that holds torch (the rehearsal found a stage failing on "No module named torch"). Both names run $PY.
WRAP="$SITE/.python-bin"
mkdir -p "$WRAP"
for name in python python3; do printf '#!/bin/sh\nexec "%s" "$@"\n' "$(command -v "$PY")" >"$WRAP/$name"; done
chmod +x "$WRAP"/python "$WRAP"/python3
export PATH="$WRAP:$SITE/bin:$PATH" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
cd "$HERE/project"
git init -q 2>/dev/null || true   # dvc wants a repository; the bundle's project is a plain folder
set +e
"$PY" scripts/gpu_check.py --data "$HERE/dialogsum" --out "$OUT_DIR/gpu-check.json" ${GPU_CHECK_ARGS:-} 2>&1 \
  | tee "$OUT_DIR/gpu-check.log"
code=${PIPESTATUS[0]}
echo "gpu check exit $code after $(( $(date +%s) - start )) s; figures: $OUT_DIR/gpu-check.json"
exit $code
"""


def size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2 ** 20


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / ".bundle"))
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/dialogsum"), help="a local DialogSum")
    p.add_argument("--list", action="store_true", help="print what would be shipped, download nothing")
    args = p.parse_args(argv)
    out, data = Path(args.out).resolve(), Path(args.data)
    image = read_image()
    packages = wanted(requirements(), image)
    with tempfile.TemporaryDirectory() as tmp:
        resolved = resolve(packages, image, Path(tmp))
        print(f"{len(resolved)} packages for the machine: " + ", ".join(f"{n}=={v}" for n, v in resolved.items()))
        if args.list:
            return 0
        if not (data / "train.jsonl").exists():
            sys.exit(f"--data {data}: no DialogSum there (train.jsonl)")
        shutil.rmtree(out, ignore_errors=True)
        download(resolved, out / "wheels", Path(tmp))
    counts = data_cut(data, out / "dialogsum")
    for rel in project_files(ROOT):
        dest = out / "project" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    (out / "run.sh").write_text(RUN_SH)
    (out / "run.sh").chmod(0o755)
    sizes = {part: round(size_mib(out / part), 1) for part in ("wheels", "dialogsum", "project")}
    total = size_mib(out)
    print(f"bundle {out}: {total:.1f} MiB ({sizes}; DialogSum rows {counts}); limit {LIMIT_MIB} MiB")
    if total > LIMIT_MIB:
        print(f"over the {LIMIT_MIB} MiB limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
