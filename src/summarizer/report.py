"""The comparison report: tidy tables behind the figures, error analysis per variant, and the markdown results table.

Everything here is computed from the metrics and prediction files the pipeline already wrote; nothing is generated
or scored again.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from summarizer import plots
from summarizer.analysis import FLAGS, Thresholds, flag_example
from summarizer.config import METHODS, VARIANTS, ReportParams
from summarizer.data import word_count
from summarizer.io import atomic_write_text, read_json, read_jsonl, rounded, write_json
from summarizer.scoring import PROTOCOLS, ROUGE_KEYS

log = logging.getLogger(__name__)

# -------------------------------------------------------------------------------------------------------------------
# Tidy tables for the figures


def rouge_table(evals: Mapping[str, dict]) -> pd.DataFrame:
    rows = [{"variant": v, "protocol": p, "metric": k, **m[p][k]}
            for v, m in evals.items() for p in PROTOCOLS for k in ROUGE_KEYS]
    return pd.DataFrame(rows, columns=["variant", "protocol", "metric", "mean", "ci_low", "ci_high"])


def baseline_table(baseline: dict, metric: str = "rougeL", protocol: str = "per_reference") -> pd.DataFrame:
    """One row per strategy × setting; ``truncated_share``: outputs cut at max_new_tokens (NaN in older metrics)."""
    rows = [{"strategy": s, "setting": g, "value": m[protocol][metric]["mean"],
             "ci_low": m[protocol][metric]["ci_low"], "ci_high": m[protocol][metric]["ci_high"],
             "truncated_share": m.get("truncated_share", float("nan"))}
            for s, block in baseline.items() for g, m in block.items() if g != "prompts"]
    return pd.DataFrame(rows, columns=["strategy", "setting", "value", "ci_low", "ci_high", "truncated_share"])


def read_tsv_curve(text: str, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of a dvclive TSV, keeping the last value logged at each step."""
    rows = list(csv.DictReader(io.StringIO(text), delimiter="\t"))
    return sorted({int(r["step"]): float(r[key]) for r in rows}.items())


# Length-grouped batches (training.group_by_length) come in megabatches of 50 batches, each sorted long to short
# (transformers' get_length_grouped_indices: mega_batch_mult = min(rows // (4 x batch), 50)). A loss logged every 25
# steps then alternates between a megabatch's long and short halves: a zig-zag that is the sampler, not learning.
MEGABATCH_STEPS = 50


def running_mean(points: Sequence[tuple[int, float]], window: int = MEGABATCH_STEPS) -> list[float]:
    """At each logged step, the mean loss over the last ``window`` optimizer steps: each logged value is the mean
    since the previous log, so it is weighted by the steps it covers."""
    out = []
    for i, (step, _) in enumerate(points):
        total = covered = 0.0
        for j in range(i, -1, -1):
            start, end = (points[j - 1][0] if j else 0), points[j][0]
            steps = end - max(start, step - window)  # the part of (start, end] inside (step - window, step]
            if steps <= 0:
                break
            total, covered = total + points[j][1] * steps, covered + steps
        out.append(total / covered if covered else points[i][1])
    return out


def loss_table(curves: Mapping[str, Mapping[str, list[tuple[int, float]]]]) -> pd.DataFrame:
    """curves: method → split → [(step, loss)]; training losses also get ``loss_mean``, their running mean over a
    megabatch (:func:`running_mean`), which is what the figure draws boldly."""
    rows = []
    for m, splits in curves.items():
        for s, points in splits.items():
            means = running_mean(points) if s == "train" else [None] * len(points)
            rows += [{"method": m, "split": s, "step": step, "loss": loss, "loss_mean": mean}
                     for (step, loss), mean in zip(points, means)]
    return pd.DataFrame(rows, columns=["method", "split", "step", "loss", "loss_mean"])


def toxicity_table(records: Mapping[str, Sequence[dict]], before: str, after: str) -> pd.DataFrame:
    """Per-dialogue toxicity of the variants before and after PPO, labelled for the figure."""
    return pd.DataFrame([{"model": f"{label}: {v}", "dialogue_id": r["dialogue_id"], "toxicity": r["toxicity"]}
                         for label, v in (("before PPO", before), ("after PPO", after)) for r in records[v]],
                        columns=["model", "dialogue_id", "toxicity"])


def length_tables(records: Mapping[str, list[dict]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(box data: source, words — with the human references as one source; scatter data: variant, human, predicted)."""
    box, scatter = [], []
    first = next(iter(records.values()))
    box += [{"source": "human", "words": word_count(ref)} for r in first for ref in r["references"]]
    for variant, rows in records.items():
        for r in rows:
            human = sum(word_count(x) for x in r["references"]) / len(r["references"])
            box.append({"source": variant, "words": word_count(r["prediction"])})
            scatter.append({"variant": variant, "dialogue_id": r["dialogue_id"], "human_words": rounded(human, 2),
                            "predicted_words": word_count(r["prediction"])})
    return pd.DataFrame(box), pd.DataFrame(scatter)


# -------------------------------------------------------------------------------------------------------------------
# Error analysis


def flag_records(records: Sequence[dict], dialogues: Mapping[str, str], t: Thresholds) -> list[dict]:
    """Per example: dialogue id, ROUGE-L, the flags."""
    return [{"dialogue_id": r["dialogue_id"], "rougeL": r["scores"]["per_reference"]["rougeL"],
             **flag_example(r["prediction"], dialogues[r["dialogue_id"]], r["references"], t)} for r in records]


def flag_shares(flags: Mapping[str, list[dict]]) -> pd.DataFrame:
    rows = [{"variant": v, "flag": f, "count": sum(x[f] for x in items), "share": sum(x[f] for x in items) / len(items)}
            for v, items in flags.items() for f in FLAGS]
    return pd.DataFrame(rows, columns=["variant", "flag", "count", "share"])


def error_summary(shares: pd.DataFrame) -> dict:
    """variant → flag → count and share, for metrics/errors.json."""
    return {v: {row.flag: {"count": int(row.count), "share": rounded(float(row.share))}
                for row in shares[shares.variant == v].itertuples()}
            for v in dict.fromkeys(shares.variant)}


def worst_examples(records: Sequence[dict], flags: Sequence[dict], dialogues: Mapping[str, str],
                   n: int) -> pd.DataFrame:
    """The ``n`` lowest ROUGE-L examples with their dialogue, prediction, references and flags."""
    by_id = {f["dialogue_id"]: f for f in flags}
    worst = sorted(records, key=lambda r: (r["scores"]["per_reference"]["rougeL"], r["dialogue_id"]))[:n]
    return pd.DataFrame([{
        "dialogue_id": r["dialogue_id"], "rougeL": rounded(r["scores"]["per_reference"]["rougeL"], 4),
        "flags": ",".join(f for f in FLAGS if by_id[r["dialogue_id"]][f]), "prediction": r["prediction"],
        "references": " || ".join(r["references"]), "dialogue": dialogues[r["dialogue_id"]],
    } for r in worst])


# -------------------------------------------------------------------------------------------------------------------
# The markdown results table


def _ci(m: dict) -> str:
    return f"{m['mean']:.4f} [{m['ci_low']:.4f}, {m['ci_high']:.4f}]"


def reference_label(name: str, m: Mapping) -> str:
    """Lead-3, Longest-3, constant, greedy oracle (ROUGE-1+2, uses the references): how the report names a
    reference system. The oracle picks turns greedily for ROUGE-1/2; it is not an upper bound (references.py)."""
    if "k" in m:
        return f"{name.capitalize()}-{m['k']}"
    if name == "oracle":
        return "greedy oracle (ROUGE-1+2, uses the references)"
    return f"{name} (uses the references)" if m.get("uses_references") else name


def _paired(comparison: Mapping[str, dict], against: str, variant: str, alpha: float) -> str:
    block = comparison.get(f"vs_{against}", {})
    if variant not in block:
        return "–"
    c = block[variant]["per_reference"]["rougeL"]
    # Holm-adjusted within its family when compare wrote it (every variant x ROUGE metric of this comparison)
    verdict = "significant" if c.get("p_holm", c["p_value"]) < alpha else "not significant"
    return f"{c['difference']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] ({verdict})"


# The course's published FLAN-T5-base test outputs (../shared/data/lab2-outputs) scored by this project's scorer,
# per_reference ROUGE-1 / ROUGE-L: tests/test_scoring.py rescores the files and holds these figures.
COURSE_RESULTS = (("course: FLAN-T5-base zero-shot", 0.2333, 0.2015),
                  ("course: FLAN-T5-base full fine-tuning", 0.4214, 0.3384),
                  ("course: FLAN-T5-base LoRA (r=32)", 0.4081, 0.3251))
README_LABELS = {"base": "base (zero-shot)", "full": "full fine-tuning", "lora": "LoRA",
                 "prompt_tuning": "prompt tuning", "ppo": "PPO (from the toxic LoRA)", "lead": "Lead-3 (no model)",
                 "constant": "constant summary (no model)", "oracle": "greedy oracle, ROUGE-1+2 (uses the references)"}
TABLE_BEGIN, TABLE_END = "<!-- results-table: generated by the report stage; `make readme` copies it -->", \
    "<!-- end of results-table -->"


def readme_table(evals: Mapping[str, dict], references: Mapping[str, dict], comparison: Mapping[str, dict]) -> str:
    """The short results table of README.md and docs/results.md, between its markers: the report stage writes it
    into metrics/README.md, `make readme` (scripts/readme_table.py) copies it, and a test holds the copies to the
    committed metrics."""
    lead = references["lead"]
    lines = [TABLE_BEGIN, "| system | ROUGE-1 | ROUGE-L | distinct | cut | ROUGE-L − Lead-3 (paired, 95% CI) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for variant in ("base", "full", "lora", "prompt_tuning", "ppo"):
        m = evals[variant]
        c = comparison["vs_lead"][variant]["per_reference"]["rougeL"]
        lines.append(f"| {README_LABELS[variant]} | {_ci(m['per_reference']['rouge1'])} | "
                     f"{_ci(m['per_reference']['rougeL'])} | {round(m['distinct_share'] * m['n_dialogues'])} of "
                     f"{m['n_dialogues']} | {m['generation']['truncated_share']:.0%} | "
                     f"{c['difference']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] |")
    for name in ("lead", "constant", "oracle"):
        m = references[name]
        gap = ("reference" if name == "lead" else
               f"{m['per_reference']['rougeL']['mean'] - lead['per_reference']['rougeL']['mean']:+.4f} (of the means)")
        lines.append(f"| {README_LABELS[name]} | {_ci(m['per_reference']['rouge1'])} | "
                     f"{_ci(m['per_reference']['rougeL'])} | {round(m['distinct_share'] * m['n_dialogues'])} of "
                     f"{m['n_dialogues']} | – | {gap} |")
    lines += [f"| *{label}* | *{r1:.4f}* | *{rl:.4f}* | | | |" for label, r1, rl in COURSE_RESULTS]
    return "\n".join([*lines, TABLE_END])


def _correction(comparison: Mapping[str, dict], alpha: float) -> str:
    """How "significant" is decided, from what compare wrote (nothing for metrics written before it corrected)."""
    corrections = [block["correction"] for block in comparison.values() if "correction" in block]
    if not corrections:
        return f"; significant: p < {alpha}"
    sizes = sorted({c["tests_per_family"] for c in corrections})
    tests = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}"
    return (f"; significant: Holm–Bonferroni-adjusted p < {alpha} within its family — every variant × ROUGE metric "
            f"compared with the same system under the same protocol, {tests} tests — from "
            f"{corrections[0]['resamples']:,} paired bootstrap resamples")


def _interval(d: Mapping) -> str:
    return f"{d['difference']:+.3f}, 95% CI [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"


def _moved(d: Mapping) -> str:
    return "rose" if d["ci_low"] > 0 else ("fell" if d["ci_high"] < 0 else "did not move clearly")


GOAL_LABELS = {"offensive_share_fell": "offensive share fell", "toxicity_fell": "P(offensive) fell",
               "rouge_l_kept": "ROUGE-L kept (CI low >= -0.01)", "distinct_kept": "distinct kept (>= 95%)",
               "length_kept": "length kept (x0.8-1.2)"}


def _goals(goals: Mapping) -> str:
    met = [label for key, label in GOAL_LABELS.items() if goals.get(key)]
    missed = [label for key, label in GOAL_LABELS.items() if key in goals and not goals[key]]
    return ("Every goal met: " + ", ".join(met)) if not missed else (
        "Goals missed: " + ", ".join(missed) + ("; met: " + ", ".join(met) if met else ""))


def _verdict(d: Mapping, alpha: float) -> str:
    if d["ci_low"] == d["ci_high"]:
        # Every dialogue's difference is the same number: each model wrote one summary for every dialogue, so the
        # bootstrap has nothing to resample and its p-value says nothing. Two sentences were compared, not a sample.
        return "every dialogue's difference is the same: one summary each, so no test applies"
    return f"p={d['p_value']:.4f}, " + ("significant" if d["p_value"] < alpha else "not significant")


def ppo_lines(train: Mapping, detox: Mapping, alpha: float) -> list[str]:
    """What PPO did, in words and numbers: its reward over its steps and on held-out prompts, then the test summaries
    before and after, judged by the lexicon (a measure PPO was never rewarded by) as well as the classifier, beside
    what must not change — ROUGE-L against the clean references, distinct summaries, length — and the goals."""
    out = []
    q = train.get("reward_quarters")
    if q:
        d = q["difference"]
        out.append(f"**PPO** ({train['steps']} steps; reward: {train.get('reward', 'the classifier')}; sampling: "
                   f"{train.get('sampling') or 'the course'}): its reward on its own samples {_moved(d)}: first "
                   f"quarter of the steps {q['first']['mean']:.3f}, last quarter {q['last']['mean']:.3f} (difference "
                   f"{_interval(d)}); KL to the starting summarizer at most {train.get('kl_max', float('nan')):.3f}.")
        out.append("")
    h = train.get("heldout_reward")
    if h:
        d = h["difference"]
        out.append(f"On {h['prompts']} prompts PPO never trained on ({h['samples_per_prompt']} samples each, the same "
                   f"seed before and after), its reward {_moved(d)}: {h['before']['mean']:.3f} → "
                   f"{h['after']['mean']:.3f} (paired difference {_interval(d)}); "
                   f"sampled summaries of {h['response_tokens_before']:.1f} → {h['response_tokens_after']:.1f} "
                   "tokens. Unlike the quarters above, the prompts are the same on both sides.")
        out.append("")
    b, a, diff = detox["before"], detox["after"], detox["difference"]
    t = diff["toxicity"]
    start = ("`ppo_start` (the LoRA summarizer trained on the synthetic toxic references, merged as PPO starts from "
             "it and evaluated exactly like `ppo`, so only PPO's updates differ)" if b["variant"] == "ppo_start"
             else f"`{b['variant']}`")
    line = (f"On the {detox['n_dialogues']} test dialogues, {start} → `{a['variant']}`: mean P(offensive) "
            f"{b['toxicity']['mean']['mean']:.4f} → {a['toxicity']['mean']['mean']:.4f} (paired difference "
            f"{t['difference']:+.4f}, 95% CI [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}], {_verdict(t, alpha)})")
    if "offensive_share" in b:
        o, r = diff["offensive_share"], diff["rouge"]["rougeL"]
        line += (f"; summaries with a lexicon word {b['offensive_share']['mean']:.1%} → "
                 f"{a['offensive_share']['mean']:.1%} ({o['difference']:+.3f} [{o['ci_low']:+.3f}, "
                 f"{o['ci_high']:+.3f}]); above P 0.5 {b['above_half_share']:.1%} → {a['above_half_share']:.1%}; "
                 f"ROUGE-L against the clean references {_interval(r)}; distinct summaries {b['distinct']} → "
                 f"{a['distinct']}; mean length {b['length_words']:.1f} → {a['length_words']:.1f} words "
                 f"(x{detox['length_ratio']:.2f}). {_goals(detox['goals'])}.")
        if detox["length_ratio"] < 0.5 and t["difference"] < 0:
            line += (" The summaries shrank to under half their length: a drop in toxicity that comes with it can "
                     "come from gaming the classifier (short stock phrases it scores as inoffensive) rather than "
                     "from removing anything offensive, so it is no evidence of detoxification by itself "
                     "(docs/ppo.md).")
        lengths = detox.get("reward_by_length")
        if lengths and lengths.get("within_buckets_gain") is not None:
            line += (f" The classifier's margin rose {lengths['overall_gain']:+.2f} overall and "
                     f"{lengths['within_buckets_gain']:+.2f} within summary-length buckets (a gain that only shows "
                     "overall came from the length).")
    else:
        line += "."
    out.append(line)
    return out


def ablation_markdown(ablation: Mapping, detox: Mapping | None = None) -> list[str]:
    """The four PPO runs of scripts/ppo_ablation.py as a table: what each reward and sampler did to the summaries.
    Said when its run with the params' own setting no longer matches the pipeline's PPO (``detox``)."""
    runs = ablation.get("runs", {})
    if not runs:
        return []
    stale = []
    if detox is not None and "both" in runs and "offensive_share" in detox.get("after", {}):
        ours, theirs = runs["both"]["after"], detox["after"]
        if (ours["offensive_share"]["mean"], ours["distinct"]) != (theirs["offensive_share"]["mean"],
                                                                  theirs["distinct"]):
            stale = ["", "**Stale:** the ablation's `both` run is not the pipeline's PPO any more (PPO's code, params "
                     "or starting model changed since it ran): rerun `scripts/ppo_ablation.py`."]
    out = ["**The hack beside the fix** (`scripts/ppo_ablation.py`, `metrics/ppo_ablation.json`, seed "
           f"{ablation.get('seed')}): PPO from the same toxic summarizer with the course's reward and sampling, "
           "each remedy alone, and both (the detoxify stage's setting). Test dialogues, greedy; differences paired "
           "over dialogues with 95% CIs. Other lexicon words: summaries with a word of the lexicon the toxic "
           "references never carried (a policy that swapped its insult for another would show there).", "",
           "| run | reward | fixed length | offensive (lexicon) | other lexicon words | P(offensive) | > 0.5 "
           "| ROUGE-L after − before | distinct | words | reward gain: overall / within length | goals |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in runs.items():
        b, a, d = row["before"], row["after"], row["difference"]
        o, r = d["offensive_share"], d["rouge"]["rougeL"]
        lengths = row["reward_by_length"]
        within = lengths["within_buckets_gain"]
        ppo = row["ppo"]
        reward = ppo["toxicity_reward"].replace("_", " ") + (
            f" + {ppo['quality_weight']:g} ROUGE-L" if ppo.get("quality_weight") else "")
        met = sum(bool(v) for k, v in row["goals"].items() if k != "all")
        other = row.get("other_lexicon_words")
        other = "–" if other is None else f"{other['before']['share']:.1%} → {other['after']['share']:.1%}"
        out.append(f"| {name} | {reward} | {'yes' if ppo['fixed_length'] else 'no'} "
                   f"| {b['offensive_share']['mean']:.0%} → {a['offensive_share']['mean']:.0%} "
                   f"[{o['ci_low']:+.2f}, {o['ci_high']:+.2f}] | {other} "
                   f"| {b['toxicity']['mean']['mean']:.3f} → {a['toxicity']['mean']['mean']:.3f} "
                   f"| {b['above_half_share']:.0%} → {a['above_half_share']:.0%} "
                   f"| {r['difference']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] "
                   f"| {b['distinct']} → {a['distinct']} | {b['length_words']:.1f} → {a['length_words']:.1f} "
                   f"| {lengths['overall_gain']:+.2f} / {'–' if within is None else f'{within:+.2f}'} "
                   f"| {'all' if row['goals']['all'] else f'{met} of 5'} |")
    return out + stale


def ablation_table(ablation: Mapping) -> pd.DataFrame:
    """The four runs' measures, tidy, for the figure."""
    rows = []
    for name, row in ablation.get("runs", {}).items():
        d = row["difference"]
        for measure, test in (("offensive_share", d["offensive_share"]), ("toxicity", d["toxicity"]),
                              ("rougeL", d["rouge"]["rougeL"])):
            rows.append({"run": name, "measure": measure, "value": test["difference"], "ci_low": test["ci_low"],
                         "ci_high": test["ci_high"]})
        lengths = row["reward_by_length"]
        for measure, value in (("distinct_kept", row["distinct_kept"]), ("length_ratio", row["length_ratio"]),
                               ("overall_gain", lengths["overall_gain"]),
                               ("within_buckets_gain", lengths["within_buckets_gain"])):
            rows.append({"run": name, "measure": measure, "value": value, "ci_low": None, "ci_high": None})
    return pd.DataFrame(rows, columns=["run", "measure", "value", "ci_low", "ci_high"])


def results_markdown(evals: Mapping[str, dict], references: Mapping[str, dict], comparison: Mapping[str, dict],
                     training: Mapping[str, dict], *, alpha: float, note: str | None,
                     detox: Mapping | None = None, ablation: Mapping | None = None) -> str:
    """One row per variant, then one per reference baseline: ROUGE with CIs (per_reference), BLEU, length, distinct
    outputs, toxicity, trainable parameters, training time, and ROUGE-L against base and Lead-k (paired bootstrap
    difference with its CI; significant when p < alpha)."""
    lines = ["# Results", "", "Generated by the `report` stage (`stages/report.py`) from `metrics/`; do not edit.", ""]
    if note:
        lines += [f"**{note}.**", ""]
    lead = reference_label("lead", references["lead"]) if "lead" in references else "Lead-k"
    lines += ["Test split, `per_reference` protocol (each row against its own reference; 95% bootstrap CIs over "
              "dialogues). `cut`: share of outputs that stopped at `generation.max_new_tokens` without an end "
              "token (a summary cut short, or a model that never stops). The last two columns: paired bootstrap of "
              f"ROUGE-L against `base` and against {lead} (difference, 95% CI){_correction(comparison, alpha)}. "
              "Rows below the line are reference baselines made without a model (`metrics/eval/references.json`).",
              "",
              "| system | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-Lsum | BLEU | mean words | distinct | cut | toxicity "
              f"| trainable params | training time (s) | ROUGE-L vs base | ROUGE-L vs {lead} |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def row(label: str, m: Mapping, cells: Sequence[str]) -> str:
        r = m["per_reference"]
        distinct = f"{m['distinct_share']:.0%}" if "distinct_share" in m else "–"
        cut = f"{m['generation']['truncated_share']:.0%}" if "generation" in m else "–"
        return (f"| {label} | {_ci(r['rouge1'])} | {_ci(r['rouge2'])} | {_ci(r['rougeL'])} | {_ci(r['rougeLsum'])} "
                f"| {m['bleu']:.2f} | {m['length_words']['mean']:.1f} | {distinct} | {cut} | {' | '.join(cells)} |")

    for variant, m in evals.items():
        t = training.get(variant, {})
        lines.append(row(variant, m, [
            f"{m['toxicity']['mean']['mean']:.4f}",
            f"{t['trainable_parameters']:,}" if "trainable_parameters" in t else "–",
            f"{t['train_runtime_s']:.1f}" if "train_runtime_s" in t else "–",
            "reference" if variant == "base" else _paired(comparison, "base", variant, alpha),
            _paired(comparison, "lead", variant, alpha)]))
    lines.append("| " + " | ".join(["—"] * 14) + " |")
    for name, m in references.items():
        lines.append(row(reference_label(name, m), m, ["–", "–", "–", "–", "reference" if name == "lead" else "–"]))
    backends = {v: m["generation"]["backend"] for v, m in evals.items() if "generation" in m}
    if backends:
        lines += ["", "Generated with: " + ", ".join(f"{v} {b}" for v, b in backends.items())
                  + " (`generation.backend`; prompt tuning cannot be converted for CTranslate2)."]
    if "constant" in references:
        lines += ["", f"The constant summary is the summary of train row `{references['constant']['summary_id']}`, "
                  "chosen on the train split (its text: `data/references/constant.jsonl`; DialogSum's text stays "
                  "out of git)."]
    if detox is not None and "ppo" in training:
        lines += ["", *ppo_lines(training["ppo"], detox, alpha)]
    if ablation:
        lines += ["", *ablation_markdown(ablation, detox)]
    lines += ["", "Figures: `plots/*.png` (numbers behind each in `plots/data/`). Worst examples per variant: "
              "`data/report/worst/<variant>.csv` (DVC output: it quotes the dataset, so it stays out of git).", ""]
    if {"lead", "constant", "oracle"} <= set(references) and "vs_lead" in comparison:
        lines += ["The short table of README.md and docs/results.md (`make readme` copies it there):", "",
                  readme_table(evals, references, comparison), ""]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------------------------
# The whole report


@dataclass(frozen=True)
class ReportPaths:
    """Where the report reads (the pipeline's outputs) and writes; the report stage fills it from dvc.yaml."""

    metrics_dir: Path  # metrics/: models/base.json, baseline.json, eval/*.json, train/*.json, ppo.json
    predictions: Path  # <variant>.jsonl per variant
    test: Path  # the prepared test split (dialogue text for the error analysis)
    dvclive: Path  # <method>/plots/metrics/{loss,eval/loss}.tsv
    plots: Path  # PNGs here, the CSV behind each in plots/data
    worst: Path  # <variant>.csv: the worst examples (they quote the dataset)
    table: Path  # the markdown results table
    errors: Path  # error-category counts and shares (JSON)
    ablation: Path | None = None  # metrics/ppo_ablation.json (scripts/ppo_ablation.py), when it has been run


TINY_NOTE = "Scores of tiny random models: meaningless, they only show the pipeline works"


def model_note(base_info: Mapping) -> str | None:
    """What the results come from, when it is not the real base model: said at the top of the table."""
    if base_info["source"] == "tiny-random":
        return TINY_NOTE
    pre = base_info.get("pretraining")
    if base_info["source"] == "pretrained-here" and pre:
        copy = base_info.get("copy")
        reads = "" if copy is None else (
            f"; given a validation dialogue's first {copy['tokens']} tokens it predicts {copy['copy_accuracy']:.3f} "
            f"of them, {copy['copy_accuracy_other']:.3f} given another dialogue's (copy gain {copy['copy_gain']:.3f}"
            + ("" if copy.get("min_copy_gain") is None else f", gate {copy['min_copy_gain']}") + ")")
        return (f"A {base_info['parameters'] / 1e6:.1f} M-parameter T5 pretrained here from scratch on the train "
                f"dialogues ({', '.join(pre['objectives'])}; {pre['steps']:,} steps, "
                f"{pre['train_runtime_s'] / 60:.0f} minutes on this machine's device{reads}), then fine-tuned here: "
                "not FLAN-T5, which needs the Hub. Its scores show what each method does to a small model")
    return None


def write_report(paths: ReportPaths, params: ReportParams) -> None:
    """Figures (PNG + CSV), the error analysis and the results table, from the metrics and prediction files."""
    m, out, data = paths.metrics_dir, paths.plots, paths.plots / "data"
    base_info = read_json(m / "models/base.json")
    tiny = base_info["source"] == "tiny-random"
    note = plots.SUBTITLE if tiny else None
    if base_info["source"] == "pretrained-here":  # said on every figure, as the random models' note is
        note = (f"a {base_info['parameters'] / 1e6:.1f} M-parameter T5 pretrained and fine-tuned here on a CPU: "
                "not FLAN-T5")

    evals = {v: read_json(m / f"eval/{v}.json") for v in VARIANTS}
    references = read_json(m / "eval/references.json")
    comparison = read_json(m / "eval/comparison.json")
    training = {v: read_json(m / f"train/{v}.json") for v in (*METHODS, "ppo")}
    records = {v: read_jsonl(paths.predictions / f"{v}.jsonl") for v in VARIANTS}
    dialogues = {r["dialogue_id"]: r["dialogue"] for r in read_jsonl(paths.test)}

    labelled = {reference_label(name, r): r for name, r in references.items()}
    plots.rouge_by_variant(rouge_table({**evals, **labelled}), out / "rouge_by_variant.png",
                           data / "rouge_by_variant.csv", note, references=list(labelled))
    plots.rouge_against_references(rouge_table({**evals, **labelled}), out / "rouge_vs_references.png",
                                   data / "rouge_vs_references.csv", note, references=list(labelled))
    plots.baseline_heatmap(baseline_table(read_json(m / "baseline.json")), out / "baseline_heatmap.png",
                           data / "baseline_heatmap.csv", "ROUGE-L (per_reference)", note)
    curves = {method: {
        split: read_tsv_curve((paths.dvclive / method / "plots/metrics" / tsv).read_text(encoding="utf-8"), "loss")
        for split, tsv in (("train", "loss.tsv"), ("validation", "eval/loss.tsv"))
    } for method in METHODS}
    plots.loss_curves(loss_table(curves), out / "loss_curves.png", data / "loss_curves.csv", note)
    detox = read_json(m / "ppo.json")
    before, after = detox["before"]["variant"], detox["after"]["variant"]
    detox_records = {v: records[v] if v in records else read_jsonl(paths.predictions / f"{v}.jsonl")
                     for v in (before, after)}  # "before" is ppo_start, evaluated beside the variants
    plots.toxicity_before_after(toxicity_table(detox_records, before, after),
                                out / "toxicity_before_after.png", data / "toxicity_before_after.csv", note)
    ablation = read_json(paths.ablation) if paths.ablation and paths.ablation.exists() else None
    if ablation and ablation.get("runs"):
        plots.ppo_ablation(ablation_table(ablation), out / "ppo_ablation.png", data / "ppo_ablation.csv", note)
    box, scatter = length_tables(records)
    plots.length_box(box, out / "length_box.png", data / "length_box.csv", note)
    plots.length_scatter(scatter, out / "length_scatter.png", data / "length_scatter.csv", note)

    thresholds = Thresholds(min_words=params.min_words, max_length_ratio=params.max_length_ratio,
                            missing_info=params.missing_info)
    flags = {v: flag_records(records[v], dialogues, thresholds) for v in VARIANTS}
    shares = flag_shares(flags)
    plots.error_categories(shares, out / "error_categories.png", data / "error_categories.csv", note)
    write_json(paths.errors, error_summary(shares))
    for v in VARIANTS:
        table = worst_examples(records[v], flags[v], dialogues, params.worst_examples)
        atomic_write_text(paths.worst / f"{v}.csv", table.to_csv(index=False))
    atomic_write_text(paths.table, results_markdown(evals, references, comparison, training,
                                                    alpha=params.significance, note=model_note(base_info),
                                                    detox=detox, ablation=ablation))
    log.info("wrote %s, %s and figures in %s", paths.table, paths.errors, out)
