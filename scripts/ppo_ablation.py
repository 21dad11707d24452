"""The hack beside the fix: four PPO runs from the same toxic summarizer, differing only in the reward and sampling.

    course        the course's reward (the classifier's logit margin) and sampling (a length drawn per step, EOS ends)
    fixed_length  the course's reward, responses of a fixed length cut at their first EOS, the short-summary floor
    quality       log P(non-toxic) + quality_weight x ROUGE-L F1 against the reference, the course's sampling
    both          both: the params' own setting, which is what the detoxify stage runs

Each run is the detoxify stage with those ``ppo.*`` keys overridden, then the evaluate stage on the test split
(greedy, as every variant), in ``--work/<run>/``; the starting summarizer is evaluated once (``--work/start``).
Each row compares the run's test summaries with the start's, paired over dialogues
(``summarizer.evaluation.toxicity_before_after``): the lexicon's offensive share, mean P(offensive) and its share
above 0.5, ROUGE-L against the clean references, distinct summaries, length, and the classifier's reward within
length buckets. The report stage reads the result (``metrics/ppo_ablation.json``) for its table and figure.

    python scripts/ppo_ablation.py --params <the profile's params.yaml>          # about 25 minutes on 2 CPU cores
    python scripts/ppo_ablation.py --params P --runs course                       # one run, merged into --out
    python scripts/ppo_ablation.py --params P --from-pipeline   # "both" and the start: the pipeline's own outputs

The models it reads are the pipeline's outputs (``dvc repro detoxify`` first): models/base, models/lora_toxic,
models/classifier, and data/prepared. It is not a stage (four PPO runs would quadruple the profile's PPO time), so the
report does not depend on its output: ``dvc repro -s -f report`` afterwards puts it in the report (``-s``: that
stage alone; ``-f`` without it reruns every stage above the report).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from summarizer.evaluation import toxicity_before_after  # noqa: E402
from summarizer.io import read_jsonl, write_json  # noqa: E402

# ppo.* keys per run; None = the params' own value. Each mechanism switched on with the params' own settings.
_COURSE_SAMPLING = {"fixed_length": False, "short_penalty": 0.0}
_FIXED = {"fixed_length": True, "short_penalty": None}
_COURSE_REWARD = {"toxicity_reward": "margin", "quality_weight": 0.0}
_QUALITY = {"toxicity_reward": "log_probability", "quality_weight": None}
RUNS = {"course": _COURSE_REWARD | _COURSE_SAMPLING, "fixed_length": _COURSE_REWARD | _FIXED,
        "quality": _QUALITY | _COURSE_SAMPLING, "both": _QUALITY | _FIXED}


def run_params(params: dict, overrides: dict) -> dict:
    out = json.loads(json.dumps(params))
    for key, value in overrides.items():
        if value is not None:
            out["ppo"][key] = value
    return out


def stage(*args: str, log: Path) -> None:
    with log.open("a") as f:
        done = subprocess.run([sys.executable, *args], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"{' '.join(args[:1])} failed (exit {done.returncode}); see {log}")


def evaluate(params: Path, variant: str, model: Path, work: Path, paths: argparse.Namespace) -> Path:
    out = work / "predictions.jsonl"
    stage("stages/evaluate.py", "--params", str(params), "--variant", variant, "--model", str(model),
          "--base-model", paths.base_model, "--classifier", paths.classifier, "--test", paths.test,
          "--out", str(out), "--metrics", str(work / "eval.json"), log=work / "log.txt")
    return out


def other_words(before: list[dict], after: list[dict], trained: list[str]) -> dict:
    """The share of summaries with a lexicon word the toxic references never carried, before and after, and which:
    a policy that swapped its insult for another the classifier likes better would show here."""
    def share(records):
        found = [[w for w in r["offensive_words"] if w not in trained] for r in records]
        return {"share": sum(bool(f) for f in found) / max(len(records), 1),
                "words": sorted({w for f in found for w in f})}

    return {"trained_words": list(trained), "before": share(before), "after": share(after)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", required=True, help="the params the pipeline ran with (e.g. the profile's)")
    p.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    p.add_argument("--work", default=".ppo_ablation", help="one folder per run (git-ignored)")
    p.add_argument("--out", default="metrics/ppo_ablation.json", help="merged with the runs already there")
    p.add_argument("--base-model", default="models/base")
    p.add_argument("--adapter", default="models/lora_toxic")
    p.add_argument("--classifier", default="models/classifier")
    p.add_argument("--train", default="data/prepared/train.jsonl")
    p.add_argument("--test", default="data/prepared/test.jsonl")
    p.add_argument("--from-pipeline", action="store_true",
                   help="take the start's predictions and the run that is the params' own setting (both) from the "
                        "pipeline's outputs instead of running them again (the same code, params and seed)")
    p.add_argument("--predictions", default="data/predictions", help="the pipeline's ppo and ppo_start predictions")
    p.add_argument("--train-metrics", default="metrics/train/ppo.json", help="the detoxify stage's metrics")
    args = p.parse_args(argv)
    params = yaml.safe_load(Path(args.params).read_text())
    work = (ROOT / args.work).resolve()
    out_path = ROOT / args.out
    result = json.loads(out_path.read_text()) if out_path.exists() else {"runs": {}}
    result |= {"synthetic": "PPO starts from lora_toxic, trained on synthetic toxic references (stage toxify)",
               "seed": params["seed"], "order": list(RUNS)}

    start = work / "start"
    if args.from_pipeline:  # the pipeline evaluated the start exactly as evaluate() would
        start.mkdir(parents=True, exist_ok=True)
        (start / "predictions.jsonl").write_bytes((ROOT / args.predictions / "ppo_start.jsonl").read_bytes())
    for name in args.runs:
        run = work / name
        run.mkdir(parents=True, exist_ok=True)
        (run / "log.txt").write_text("")
        cfg = run_params(params, RUNS[name])
        (run / "params.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        if args.from_pipeline and cfg["ppo"] == params["ppo"]:
            print(f"{name}: the params' own setting, taken from the pipeline's outputs", flush=True)
            after = ROOT / args.predictions / "ppo.jsonl"
            train = json.loads((ROOT / args.train_metrics).read_text())
            ppo_minutes = None
        else:
            began = time.perf_counter()
            stage("stages/detoxify.py", "--params", str(run / "params.yaml"), "--base-model", args.base_model,
                  "--adapter", args.adapter, "--classifier", args.classifier, "--train", args.train,
                  "--out", str(run / "ppo"), "--start-out", str(run / "ppo_start"), "--live", str(run / "live"),
                  "--metrics", str(run / "train.json"), log=run / "log.txt")
            ppo_minutes = (time.perf_counter() - began) / 60
            if not (start / "predictions.jsonl").exists():
                start.mkdir(parents=True, exist_ok=True)
                (start / "log.txt").write_text("")
                evaluate(run / "params.yaml", "ppo_start", run / "ppo_start", start, args)
            after = evaluate(run / "params.yaml", f"ppo_{name}", run / "ppo", run, args)
            train = json.loads((run / "train.json").read_text())
        row = toxicity_before_after(read_jsonl(start / "predictions.jsonl"), read_jsonl(after),
                                    names=("ppo_start", f"ppo_{name}"), min_dialogues=cfg["ppo"]["min_eval_dialogues"],
                                    resamples=cfg["scoring"]["bootstrap_resamples"],
                                    confidence=cfg["scoring"]["confidence"], seed=cfg["seed"])
        row["ppo"] = {k: cfg["ppo"][k] for k in RUNS[name]}
        row["other_lexicon_words"] = other_words(read_jsonl(start / "predictions.jsonl"), read_jsonl(after),
                                                 cfg["toxic_references"]["words"])
        row["train"] = {k: train.get(k) for k in ("reward", "sampling", "kl_max", "heldout_reward", "train_runtime_s")}
        row["stage_minutes"] = None if ppo_minutes is None else round(ppo_minutes, 2)
        samples = read_jsonl(after)
        row["examples"] = [{"dialogue_id": r["dialogue_id"], "prediction": r["prediction"]} for r in samples[:3]]
        result["runs"][name] = row
        result["runs"] = {k: result["runs"][k] for k in RUNS if k in result["runs"]}
        write_json(out_path, result)
        d = row["difference"]
        print(f"{name}: offensive {row['before']['offensive_share']['mean']:.3f} -> "
              f"{row['after']['offensive_share']['mean']:.3f}, P(off) {d['toxicity']['difference']:+.4f}, "
              f"ROUGE-L {d['rouge']['rougeL']['difference']:+.4f} [{d['rouge']['rougeL']['ci_low']:+.4f}], "
              f"distinct {row['after']['distinct']}/{row['before']['distinct']}, length x{row['length_ratio']:.2f}, "
              f"goals {row['goals']['all']}", flush=True)
    print(f"wrote {out_path}; `dvc repro -s -f report` (single stage) puts it in the report", flush=True)


if __name__ == "__main__":
    main()
