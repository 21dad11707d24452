"""`make gpu-check`: everything that needs a GPU, in one command, with one JSON file of figures.

GPU time is lent by chance and in short budgets; this is the one prepared command to run when it is:
1. ``pytest -m gpu`` (tests/test_gpu.py);
2. the whole pipeline (``dvc repro``, every stage) in ``.gpu-check/`` on a cut of the shared DialogSum
   (configs/gpu-check.yaml: 2,000 train rows, 100 test dialogues, two prompting strategies × two settings) with a
   model of FLAN-T5-base's shape (random weights: 12 + 12 layers, d_model 768, a 32k BPE vocabulary trained on
   the dialogues), with the device, precision and GPU pinning the params give (auto: the first GPU, bf16);
3. the figures: each stage's wall time; training samples/s and tokens/s, with the full fine-tuning's model FLOPs
   utilisation against the GPU's dense bf16 peak; generation tokens/s per backend; a PPO step's time; the GPU
   memory peak while the stages ran; the share of greedy summaries that agree between bf16 and fp32, and between 1
   and 2 processes where there are two GPUs.

    python scripts/gpu_check.py [--data ../shared/data/dialogsum] [--out FILE] [--tiny]

``--tiny`` runs the same code at the demo's size on a CPU (CI does, so that it cannot rot). The JSON goes to
``--out`` (default ``.gpu-check/gpu-check.json``) and, where the variable ``OUT`` names a folder, there too.
Its scores are meaningless (random weights); the timings, memory and agreement shares are what it is for.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from demo import ROOT, make_workspace, workspace_env
from summarizer.flops import model_flops_utilisation

# Dense bf16 peak FLOP/s (no sparsity) by the name torch reports, for the model FLOPs utilisation.
BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12}
STAGE_LINE = re.compile(r"^Running stage '([^']+)'")


def run_tests() -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                           "tests/test_gpu.py"], cwd=ROOT, capture_output=True, text=True,
                          env=os.environ | {"HF_HUB_OFFLINE": "1"})
    last = [line for line in proc.stdout.splitlines() if line.strip()][-1:] or [proc.stderr[-300:]]
    return {"exit_code": proc.returncode, "summary": last[0], "seconds": round(time.perf_counter() - start, 1)}


class MemoryPeak:
    """The most GPU memory in use (all processes) while it runs, read from nvidia-smi twice a second."""

    def __init__(self):
        self.peak_mib: int | None = None
        self._stop = threading.Event()
        self._smi = shutil.which("nvidia-smi")

    def _poll(self):
        while not self._stop.wait(0.5):
            out = subprocess.run([self._smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True)
            values = [int(v) for v in out.stdout.split() if v.strip().isdigit()]
            if values:
                self.peak_mib = max(self.peak_mib or 0, *values)

    def __enter__(self):
        if self._smi:
            threading.Thread(target=self._poll, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._stop.set()


def repro(work: Path, offline: bool = True) -> tuple[dict, int]:
    """``dvc repro`` in the workspace, streamed; each stage's wall time from when DVC announced it. ``offline``:
    nothing from the Hub (False when the data comes from it)."""
    env = workspace_env(work, offline=offline)  # the workspace's own copy of the library, offline or not
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    starts: list[tuple[str, float]] = []
    for line in proc.stdout:  # type: ignore[union-attr]
        sys.stdout.write(line)
        match = STAGE_LINE.match(line)
        if match:
            starts.append((match.group(1), time.perf_counter()))
    code = proc.wait()
    ends = [t for _, t in starts[1:]] + [time.perf_counter()]
    return {name: round(end - start, 1) for (name, start), end in zip(starts, ends)}, code


def training_figures(work: Path, device_name: str | None) -> dict:
    """Per method: the optimizer steps' own throughput (training.StepTimer: without the evaluations and checkpoint
    saves the check's eval_steps = save_steps = max_steps = 50 trigger, which Trainer's samples/s includes) and,
    against the GPU's dense bf16 peak, the model FLOPs utilisation with the encoder-decoder count of
    ``summarizer.flops`` (6 × (N_enc·T_in + (N_dec + N_head)·T_out) per example). For LoRA and prompt tuning the
    count is an upper bound (no weight gradients for frozen weights), so their MFU is too."""
    peak = next((v for k, v in BF16_PEAK.items() if device_name and k in device_name), None)
    out: dict = {"bf16_peak_flops": peak}
    for method in ("full", "lora", "prompt_tuning"):
        m = json.loads((work / f"metrics/train/{method}.json").read_text())
        rate = (m["step_samples_per_s"] or 0.0) * m["processes"]
        flops_s = m["flops_per_example"] * rate
        out[method] = {"trainer_samples_per_s": m["train_samples_per_s"], "step_samples_per_s": round(rate, 2),
                       "tokens_per_s": round(rate * (m["mean_input_tokens"] + m["mean_target_tokens"]), 1),
                       "mean_input_tokens": m["mean_input_tokens"], "mean_target_tokens": m["mean_target_tokens"],
                       "model_tflops_per_s": round(flops_s / 1e12, 3), "precision": m["precision"],
                       "device": m["device"]}
        if peak:
            out[method]["mfu"] = round(model_flops_utilisation(flops_s, peak), 4)
    ppo = json.loads((work / "metrics/train/ppo.json").read_text())
    out["ppo_step_s"] = round(ppo["train_runtime_s"] / ppo["steps"], 2)
    return out


# DialogSum's sizes (the Hub dataset and ../shared/data/dialogsum): what the default params train and test on.
DIALOGSUM_ROWS = {"train": 12460, "validation": 500, "test_dialogues": 500}
# Relative cost of one generation pass by setting: a beam search of k beams decodes k sequences (an assumption:
# batched beams cost about k greedy sequences once the batch is full).
def _pass_cost(setting: dict) -> int:
    return int(setting.get("num_beams", 1))


def pipeline_estimate(stages_s: dict, training: dict, check: dict, default: dict,
                      rows: dict = DIALOGSUM_ROWS) -> dict:
    """The default pipeline (``default``: params.yaml) on this GPU, extrapolated from the check's measured stage
    times and step rates (``check``: the check's own params). Each line says how; the assumptions are listed."""
    est: dict[str, float] = {}
    how: dict[str, str] = {}
    check_train = check["data"]["max_train_samples"] or rows["train"]
    check_test = check["evaluate"]["max_dialogues"] or rows["test_dialogues"]
    data_scale = rows["train"] / check_train
    for name, seconds in stages_s.items():
        base, _, item = name.partition("@")
        if base == "finetune":
            method = "lora" if item == "lora_toxic" else item
            rate = training[method]["step_samples_per_s"]
            hp = default[method]
            examples = (hp["max_steps"] * hp["batch_size"] * hp["grad_accum_steps"] if hp["max_steps"]
                        else rows["train"] * hp["epochs"])
            # validation once per epoch (eval_steps null) at about 3x the training rate (forward only)
            evals = rows["validation"] * max(1.0, hp["epochs"]) / (3 * rate)
            est[name], how[name] = examples / rate + evals, f"{examples:.0f} examples at {rate} samples/s + evals"
        elif base == "baseline":
            def passes(p):
                return len(p["baseline"]["strategies"]) * sum(_pass_cost(s) for s in p["baseline"]["settings"])
            dialogues = default["baseline"]["max_dialogues"] or rows["test_dialogues"]
            scale = dialogues / (check["baseline"]["max_dialogues"] or rows["test_dialogues"])
            scale *= passes(default) / passes(check)
            est[name], how[name] = seconds * scale, f"measured x {scale:.1f} (dialogues x strategy-setting passes)"
        elif base == "evaluate":
            dialogues = default["evaluate"]["max_dialogues"] or rows["test_dialogues"]
            est[name], how[name] = seconds * dialogues / check_test, f"measured x {dialogues / check_test:.1f}"
        elif base == "detoxify":
            scale = default["ppo"]["steps"] * default["ppo"]["batch_size"] / (check["ppo"]["steps"]
                                                                             * check["ppo"]["batch_size"])
            est[name], how[name] = seconds * scale, f"measured x {scale:.1f} (PPO steps x batch)"
        elif base in ("prepare_data", "tokenize", "toxify"):
            est[name], how[name] = seconds * data_scale, f"measured x {data_scale:.1f} (train rows)"
        else:
            est[name], how[name] = seconds, "as measured"
    total = sum(est.values())
    return {"total_s": round(total, 1), "fits_10_minutes": total <= 600,
            "stages_s": {k: round(v, 1) for k, v in est.items()}, "how": how,
            "assumptions": [
                "the check's model has FLAN-T5-base's shape (12 + 12 layers, d_model 768); the real checkpoint's "
                "untied head adds one 32k x 768 matrix product per target token",
                f"DialogSum's sizes: {rows}",
                "training throughput at the check's batch size (16) holds at the default's (8)",
                "validation loss once per epoch at 3x the training samples/s (forward only)",
                "generation time scales with dialogues and passes; a beam of k costs k greedy passes; the check's "
                "random-weight model writes summaries of other lengths than FLAN-T5 would",
                "PPO time scales with steps x batch; data stages with the train rows; the others as measured"]}


def generation_figures(work: Path, n_tokens: int) -> dict:
    """Greedy tokens/s of models/full per backend (exactly n_tokens each), and bf16 vs fp32 agreement."""
    import torch

    from summarizer.config import load_params
    from summarizer.device import select_runtime
    from summarizer.evaluation import to_dialogues
    from summarizer.backends import load_generator
    from summarizer.io import read_jsonl
    from summarizer.prompts import build_prompt

    cfg = load_params(work / "params.yaml")
    runtime = select_runtime(cfg.device, cfg.precision, deterministic=cfg.deterministic)
    prompts = [build_prompt(d.dialogue, cfg.prompt.template)
               for d in to_dialogues(read_jsonl(work / "data/prepared/test.jsonl"))]
    forced = dataclasses.replace(cfg.generation, max_new_tokens=n_tokens, min_new_tokens=n_tokens, num_beams=1,
                                 do_sample=False)

    def generator(backend, dtype):
        return load_generator(work / "models/full", work / "models/base", work / "models/ctranslate2/full",
                              params=dataclasses.replace(forced, backend=backend), device=runtime.device,
                              dtype=dtype, attention=cfg.model.attention, batch_size=cfg.generation.batch_size,
                              max_source_tokens=cfg.prompt.max_source_tokens)

    out: dict = {"device": runtime.device, "precision": runtime.precision, "dialogues": len(prompts),
                 "new_tokens": n_tokens}
    for backend in ("transformers", "ctranslate2"):
        try:
            g = generator(backend, runtime.torch_dtype)
            g.generate(prompts[:2], forced, progress=False)  # warm-up
            start = time.perf_counter()
            g.generate(prompts, forced, progress=False)
            seconds = time.perf_counter() - start
            out[backend] = {"backend": g.backend, "batch_size": g.batch_size, "seconds": round(seconds, 2),
                            "tokens_per_s": round(len(prompts) * n_tokens / seconds, 1)}
        except Exception as err:  # noqa: BLE001 — a backend that cannot run here is a finding, not a crash
            out[backend] = {"error": f"{type(err).__name__}: {err}"[:500]}
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    greedy = dataclasses.replace(cfg.generation, num_beams=1, do_sample=False)
    texts = {dtype: generator("transformers", dtype).generate(prompts, greedy, progress=False).texts
             for dtype in (torch.float32, torch.bfloat16)}
    same = sum(a == b for a, b in zip(texts[torch.float32], texts[torch.bfloat16]))
    out["greedy_bf16_vs_fp32_identical_share"] = round(same / len(prompts), 4)
    return out


def processes_figures(work: Path) -> dict:
    """evaluate@full with generation.num_processes 2 against the pipeline's (1 process), where 2 GPUs exist."""
    import torch
    import yaml

    if torch.cuda.device_count() < 2:
        return {"measured": False, "why": f"{torch.cuda.device_count()} GPU(s): needs 2"}
    raw = yaml.safe_load((work / "params.yaml").read_text())
    raw["generation"]["num_processes"] = 2
    (work / "params-2proc.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    subprocess.run([sys.executable, "stages/evaluate.py", "--params", "params-2proc.yaml", "--variant", "full",
                    "--model", "models/full", "--base-model", "models/base", "--converted", "models/ctranslate2/full",
                    "--classifier", "models/classifier", "--test", "data/prepared/test.jsonl",
                    "--out", "full-2proc.jsonl", "--metrics", "full-2proc.json"], cwd=work, check=True,
                   env=os.environ | {"HF_HUB_OFFLINE": "1"})
    one = [json.loads(x)["prediction"] for x in (work / "data/predictions/full.jsonl").read_text().splitlines()]
    two = [json.loads(x)["prediction"] for x in (work / "full-2proc.jsonl").read_text().splitlines()]
    return {"measured": True, "identical_share": round(sum(a == b for a, b in zip(one, two)) / len(one), 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a DialogSum-layout folder (default: ../shared/data/dialogsum when it exists, "
                                   "else params.yaml's data.source, read from the Hub)")
    p.add_argument("--workspace", default=str(ROOT / ".gpu-check"))
    p.add_argument("--out", help="the figures (default: <workspace>/gpu-check.json)")
    p.add_argument("--tiny", action="store_true", help="the demo's size on a CPU: what CI runs")
    args = p.parse_args(argv)
    shared = ROOT.parent / "shared/data/dialogsum"
    data = args.data or (str(shared) if shared.is_dir() else None)
    if data is not None and not Path(data).is_dir():
        sys.exit(f"--data {data}: no such folder")
    started = time.perf_counter()
    work = Path(args.workspace).resolve()
    overrides = [ROOT / "configs/gpu-check.yaml"] + ([ROOT / "configs/gpu-check-tiny.yaml"] if args.tiny else [])
    figures: dict = {"tiny": args.tiny, "tests": run_tests()}
    make_workspace(ROOT, work, overrides, data)  # fresh: a check times a whole run
    import torch

    device_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    figures["machine"] = {"gpu": device_name, "gpus": torch.cuda.device_count(), "torch": torch.__version__,
                          "cuda": torch.version.cuda}
    with MemoryPeak() as memory:
        figures["stages_s"], code = repro(work, offline=data is not None)
    figures["peak_gpu_memory_mib"] = memory.peak_mib
    if code:
        figures["error"] = f"dvc repro failed with exit code {code}"
    else:
        figures["training"] = training_figures(work, device_name)
        figures["generation"] = generation_figures(work, n_tokens=16 if args.tiny else 64)
        figures["processes"] = processes_figures(work)
        import yaml

        figures["default_pipeline_estimate"] = pipeline_estimate(
            figures["stages_s"], figures["training"], yaml.safe_load((work / "params.yaml").read_text()),
            yaml.safe_load((ROOT / "params.yaml").read_text()))
    figures["total_s"] = round(time.perf_counter() - started, 1)
    out = Path(args.out or work / "gpu-check.json")
    text = json.dumps(figures, indent=2) + "\n"
    out.write_text(text)
    if os.environ.get("OUT") and Path(os.environ["OUT"]).is_dir():
        (Path(os.environ["OUT"]) / "gpu-check.json").write_text(text)
    print(text + f"\nwritten to {out}")
    return 1 if code or figures["tests"]["exit_code"] not in (0, 5) else 0


if __name__ == "__main__":
    sys.exit(main())
