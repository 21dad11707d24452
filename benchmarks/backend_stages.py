"""The generation backends where users meet them: the baseline stage's wall time, and the app's latency.

In a workspace where the pipeline has run (default ``.demo/``, after ``make demo``; or ``.laptop/``), with that
workspace's params and models, for each backend (transformers, ctranslate2):
- the baseline stage (every prompting strategy × generation setting) run as ``dvc repro`` runs it, timed, and its
  greedy outputs compared across the backends;
- the app's summarizer (``summarizer.service``, what the Gradio page and the CLI call): 20 sequential requests
  with the workspace's test dialogues after one warm-up request, p50 and p95 latency.

    python benchmarks/backend_stages.py [--workspace .demo] [--requests 20] [--json]
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import yaml

from summarizer.config import load_params
from summarizer.io import read_jsonl
from summarizer.service import Options, Summarizer

from benchmarks_common import ROOT, parser, report


def _params_with_backend(workspace: Path, backend: str, out: Path) -> Path:
    raw = yaml.safe_load((workspace / "params.yaml").read_text())
    raw["generation"]["backend"] = backend
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def time_baseline(workspace: Path, params: Path, out: Path) -> float:
    from stages import baseline

    start = time.perf_counter()
    baseline.main(["--params", str(params), "--data", str(workspace / "data/prepared"), "--model",
                   str(workspace / "models/base"), "--converted", str(workspace / "models/ctranslate2/base"),
                   "--out", str(out / "predictions.jsonl"), "--metrics", str(out / "baseline.json")])
    return time.perf_counter() - start


def time_requests(workspace: Path, params: Path, variant: str, dialogues: list[str]) -> list[float]:
    cfg = load_params(params)
    service = Summarizer(cfg, workspace / "models")
    options = Options(max_new_tokens=cfg.generation.max_new_tokens)
    service.summarize(dialogues[0], variant, options, max_chars=cfg.app.max_input_chars)  # loads the model
    latencies = []
    for text in dialogues:
        start = time.perf_counter()
        service.summarize(text, variant, options, max_chars=cfg.app.max_input_chars)
        latencies.append(time.perf_counter() - start)
    return latencies


def main(argv=None) -> dict:
    p = parser(__doc__)
    p.add_argument("--workspace", default=str(ROOT / ".demo"))
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--variant", default="full")
    args = p.parse_args(argv)
    workspace = Path(args.workspace)
    rows = read_jsonl(workspace / "data/prepared/test.jsonl")
    dialogues = list(dict.fromkeys(r["dialogue"] for r in rows))
    dialogues = (dialogues * (args.requests // len(dialogues) + 1))[: args.requests]
    figures: dict = {"workspace": str(workspace), "variant": args.variant, "requests": args.requests,
                     "backends": {}}
    outputs = {}
    for backend in ("transformers", "ctranslate2"):
        out = workspace / f"benchmark-{backend}"
        out.mkdir(exist_ok=True)
        params = _params_with_backend(workspace, backend, out / "params.yaml")
        seconds = time_baseline(workspace, params, out)
        outputs[backend] = [(r["strategy"], r["setting"], r["prediction"])
                            for r in read_jsonl(out / "predictions.jsonl")]
        latencies = time_requests(workspace, params, args.variant, dialogues)
        q = statistics.quantiles(latencies, n=20)
        figures["backends"][backend] = {"baseline_stage_s": round(seconds, 1), "app_p50_s": round(q[9], 3),
                                        "app_p95_s": round(q[18], 3)}
    greedy = [i for i, (s, g, _) in enumerate(outputs["transformers"]) if g == "greedy"]
    figures["baseline_greedy_identical"] = sum(outputs["transformers"][i] == outputs["ctranslate2"][i]
                                               for i in greedy)
    figures["baseline_greedy_outputs"] = len(greedy)
    hf, fast = figures["backends"]["transformers"], figures["backends"]["ctranslate2"]
    line = (f"backends in use ({workspace.name}): baseline stage transformers {hf['baseline_stage_s']:.1f} s, "
            f"ctranslate2 {fast['baseline_stage_s']:.1f} s ({figures['baseline_greedy_identical']}/"
            f"{len(greedy)} greedy outputs identical); app ({args.variant}, {args.requests} requests) p50/p95 "
            f"transformers {hf['app_p50_s'] * 1000:.0f}/{hf['app_p95_s'] * 1000:.0f} ms, ctranslate2 "
            f"{fast['app_p50_s'] * 1000:.0f}/{fast['app_p95_s'] * 1000:.0f} ms")
    return report(line, figures, args.json)


if __name__ == "__main__":
    main()
