"""Figures for the report: matplotlib PNGs (they render offline, unlike DVC's vega plots, whose scripts come from a
CDN), each written next to the CSV of the numbers behind it.

Every function takes a tidy ``pandas.DataFrame`` and a path stem; it writes ``<stem>.png`` and
``plots/data/<name>.csv``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display, ever
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from summarizer.io import atomic_write_text  # noqa: E402

ROUGE_LABELS = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}
PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
SUBTITLE = "tiny random models: meaningless scores"


def _save(fig, png: Path, data: pd.DataFrame, csv: Path, note: str | None, caption: str | None = None) -> None:
    # Below the axes (bbox_inches="tight" keeps them), so that they never cover a label: the caption says how to
    # read the figure, the note what made it.
    if caption:
        fig.text(0.5, -0.02, caption, ha="center", va="top", fontsize=8, color="#555")
    if note:
        fig.text(0.5, -0.07 if caption else -0.02, note, ha="center", va="top", fontsize=9, color="#a00",
                 style="italic")
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    tmp.replace(png)
    plt.close(fig)
    atomic_write_text(csv, data.to_csv(index=False, float_format="%.6g"))


GREYS = ["#3d3d3d", "#6e6e6e", "#9e9e9e", "#c8c8c8", "#e0e0e0"]


def _colors(variants: list[str], references: Sequence[str]) -> dict[str, str]:
    """Models in colour, reference baselines (no model) in greys."""
    models = [v for v in variants if v not in references]
    refs = [v for v in variants if v in references]
    return {**{v: PALETTE[i % len(PALETTE)] for i, v in enumerate(models)},
            **{v: GREYS[i % len(GREYS)] for i, v in enumerate(refs)}}


def rouge_by_variant(df: pd.DataFrame, png: Path, csv: Path, note: str | None = None,
                     references: Sequence[str] = ()) -> None:
    """df: variant, protocol, metric, mean, ci_low, ci_high → grouped bars with 95% CI error bars, one panel per
    protocol; the ``references`` (baselines made without a model) hatched in grey."""
    protocols = list(dict.fromkeys(df["protocol"]))
    metrics = [m for m in ROUGE_LABELS if m in set(df["metric"]) and m != "rougeLsum"]
    variants = list(dict.fromkeys(df["variant"]))
    colors = _colors(variants, references)
    fig, axes = plt.subplots(1, len(protocols), figsize=(6 * len(protocols), 4.2), sharey=True, squeeze=False)
    width = 0.8 / len(variants)
    for ax, protocol in zip(axes[0], protocols):
        for i, variant in enumerate(variants):
            sub = df[(df.protocol == protocol) & (df.variant == variant)].set_index("metric").reindex(metrics)
            x = np.arange(len(metrics)) + (i - (len(variants) - 1) / 2) * width
            err = np.vstack([sub["mean"] - sub["ci_low"], sub["ci_high"] - sub["mean"]])
            ax.bar(x, sub["mean"], width, yerr=err, capsize=2, label=variant, color=colors[variant],
                   hatch="//" if variant in references else None, edgecolor="white", linewidth=0.3)
        ax.set_xticks(np.arange(len(metrics)), [ROUGE_LABELS[m] for m in metrics])
        ax.set_title(f"protocol: {protocol}")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("F1 (mean, 95% CI)")
    axes[0][-1].legend(title="variant", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.suptitle("ROUGE per variant on the test split")
    _save(fig, png, df, csv, note)


def rouge_against_references(df: pd.DataFrame, png: Path, csv: Path, note: str | None = None,
                             references: Sequence[str] = (), metric: str = "rougeL",
                             protocol: str = "per_reference") -> None:
    """One horizontal bar per system (models in colour, baselines without a model in grey), best at the top, with
    95% CIs and a line at Lead-k: what each model's score is worth."""
    sub = df[(df.protocol == protocol) & (df.metric == metric)].sort_values("mean")
    colors = _colors(list(dict.fromkeys(df["variant"])), references)
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(sub) + 1.4))
    y = np.arange(len(sub))
    err = np.vstack([sub["mean"] - sub["ci_low"], sub["ci_high"] - sub["mean"]])
    ax.barh(y, sub["mean"], xerr=err, capsize=3, color=[colors[v] for v in sub["variant"]],
            hatch=None, edgecolor="white")
    for yi, (mean, high) in enumerate(zip(sub["mean"], sub["ci_high"])):
        ax.text(max(mean, high) + 0.004, yi, f"{mean:.3f}", fontsize=8, va="center")
    ax.set_yticks(y, [f"{v}  (no model)" if v in references and "uses the references" not in v else v
                      for v in sub["variant"]])
    lead = [v for v in sub["variant"] if v.startswith("Lead-")]
    if lead:
        ax.axvline(float(sub[sub.variant == lead[0]]["mean"].iloc[0]), color="#a00", linestyle="--", linewidth=1,
                   label=f"{lead[0]}: the first turns, copied")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel(f"{ROUGE_LABELS[metric]} F1 ({protocol}, mean and 95% CI)")
    ax.set_title(f"{ROUGE_LABELS[metric]}: every model next to baselines made without one")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, png, sub, csv, note)


def baseline_heatmap(df: pd.DataFrame, png: Path, csv: Path, metric_label: str, note: str | None = None) -> None:
    """df: strategy, setting, value (and truncated_share) → annotated heatmap (strategies as rows); a cell whose
    outputs were cut at max_new_tokens says what share."""
    order = dict(index=list(dict.fromkeys(df["strategy"])), columns=list(dict.fromkeys(df["setting"])))
    table = df.pivot(index="strategy", columns="setting", values="value").reindex(**order)
    cut = (df.pivot(index="strategy", columns="setting", values="truncated_share").reindex(**order)
           if "truncated_share" in df else table * np.nan)
    fig, ax = plt.subplots(figsize=(1.4 * table.shape[1] + 2.5, 0.6 * table.shape[0] + 1.8))
    im = ax.imshow(table.values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=30, ha="right")
    ax.set_yticks(range(table.shape[0]), table.index)
    high = np.nanmax(table.values) if np.isfinite(table.values).any() else 0
    for (r, c), v in np.ndenumerate(table.values):
        share = cut.values[r, c]
        label = f"{v:.3f}" + (f"\ncut {share:.0%}" if np.isfinite(share) and share > 0 else "")
        ax.text(c, r, label, ha="center", va="center", fontsize=9,
                color="black" if high and v > 0.6 * high else "white")
    fig.colorbar(im, ax=ax, label=metric_label)
    ax.set_title(f"Baseline prompting: {metric_label}\n(cut: outputs stopped at max_new_tokens without an end token)"
                 if np.isfinite(cut.values).any() and (np.nan_to_num(cut.values) > 0).any()
                 else f"Baseline prompting: {metric_label}")
    ax.set_xlabel("generation setting")
    ax.set_ylabel("prompting strategy")
    _save(fig, png, df, csv, note)


def loss_curves(df: pd.DataFrame, png: Path, csv: Path, note: str | None = None) -> None:
    """df: method, split (train/validation), step, loss, loss_mean → per method the logged training loss (faint), its
    running mean over a megabatch (solid) and the validation loss (dashed, markers)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, method in enumerate(dict.fromkeys(df["method"])):
        color = PALETTE[i % len(PALETTE)]
        train = df[(df.method == method) & (df.split == "train")].sort_values("step")
        if len(train):
            ax.plot(train["step"], train["loss"], "-", color=color, alpha=0.25, linewidth=0.8)
            ax.plot(train["step"], train["loss_mean"], "-", color=color, label=f"{method} (training)")
        val = df[(df.method == method) & (df.split == "validation")].sort_values("step")
        if len(val):
            ax.plot(val["step"], val["loss"], "--", marker="o", markersize=4, color=color,
                    label=f"{method} (validation)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("Fine-tuning: training (solid) and validation (dashed) loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, png, df, csv, note, caption="Faint: the logged training loss, which zig-zags because length-grouped "
          "batches come long to short in megabatches (up to 50 batches); solid: its mean over the last 50 steps.")


def toxicity_before_after(df: pd.DataFrame, png: Path, csv: Path, note: str | None = None) -> None:
    """df: model (before/after label), toxicity → overlaid histograms plus the means."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    bins = np.linspace(0, 1, 41)
    for i, model in enumerate(dict.fromkeys(df["model"])):
        values = df[df.model == model]["toxicity"]
        ax.hist(values, bins=bins, alpha=0.55, color=PALETTE[i], label=f"{model} (mean {values.mean():.4f})")
        ax.axvline(values.mean(), color=PALETTE[i], linestyle="--")
    ax.set_xlabel("P(toxic) from the classifier")
    ax.set_ylabel("test dialogues")
    ax.set_title("Toxicity of generated summaries before and after PPO")
    ax.legend(fontsize=8)
    _save(fig, png, df, csv, note)


def length_box(df: pd.DataFrame, png: Path, csv: Path, note: str | None = None) -> None:
    """df: source (variant or 'human'), words → box plot per source."""
    sources = list(dict.fromkeys(df["source"]))
    fig, ax = plt.subplots(figsize=(1.3 * len(sources) + 2, 4.2))
    ax.boxplot([df[df.source == s]["words"] for s in sources], tick_labels=sources, showmeans=True)
    ax.set_ylabel("summary length (words)")
    ax.set_title("Summary length per variant, next to the human references")
    ax.grid(axis="y", alpha=0.3)
    _save(fig, png, df, csv, note)


def length_scatter(df: pd.DataFrame, png: Path, csv: Path, note: str | None = None) -> None:
    """df: variant, human_words, predicted_words → scatter with the y = x line."""
    fig, ax = plt.subplots(figsize=(6, 5))
    for i, variant in enumerate(dict.fromkeys(df["variant"])):
        sub = df[df.variant == variant]
        ax.scatter(sub["human_words"], sub["predicted_words"], s=12, alpha=0.6, color=PALETTE[i % len(PALETTE)],
                   label=variant)
    top = max(df["human_words"].max(), df["predicted_words"].max(), 1)
    ax.plot([0, top], [0, top], color="gray", linestyle=":", label="same length")
    ax.set_xlabel("human summary length (mean of references, words)")
    ax.set_ylabel("predicted length (words)")
    ax.set_title("Predicted vs human summary length")
    ax.legend(fontsize=8)
    _save(fig, png, df, csv, note)


def error_categories(df: pd.DataFrame, png: Path, csv: Path, note: str | None = None) -> None:
    """df: variant, flag, share → grouped horizontal bars."""
    variants = list(dict.fromkeys(df["variant"]))
    flags = list(dict.fromkeys(df["flag"]))
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(flags) * max(1, len(variants) / 2) + 1.5))
    height = 0.8 / len(variants)
    for i, variant in enumerate(variants):
        sub = df[df.variant == variant].set_index("flag").reindex(flags)
        y = np.arange(len(flags)) + (i - (len(variants) - 1) / 2) * height
        ax.barh(y, sub["share"], height, label=variant, color=PALETTE[i % len(PALETTE)])
    ax.set_yticks(np.arange(len(flags)), flags)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of test dialogues flagged")
    ax.set_title("Error categories per variant (heuristic flags)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, png, df, csv, note)


def ppo_ablation(df: pd.DataFrame, png: Path, csv: Path, note: str | None = None) -> None:
    """df: run, measure, value, ci_low, ci_high (after − before, or a ratio) → one panel per measure, a bar per PPO
    run: which reward and sampling removed the insults, and which won the classifier by wrecking the summaries."""
    panels = [("offensive_share", "offensive summaries (lexicon),\nafter − before", 0.0),
              ("toxicity", "mean P(offensive) (classifier),\nafter − before", 0.0),
              ("rougeL", "ROUGE-L vs the clean references,\nafter − before", 0.0),
              ("distinct_kept", "distinct summaries,\nafter / before", 1.0),
              ("length_ratio", "mean length (words),\nafter / before", 1.0),
              ("within_buckets_gain", "classifier reward gain:\noverall (light) / within length buckets", 0.0)]
    runs = list(dict.fromkeys(df["run"]))
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.4))
    x = np.arange(len(runs))
    for ax, (measure, title, ref) in zip(axes.flat, panels):
        sub = df[df.measure == measure].set_index("run").reindex(runs)
        err = None
        if sub["ci_low"].notna().any():
            err = np.vstack([sub["value"] - sub["ci_low"], sub["ci_high"] - sub["value"]]).clip(min=0)
        if measure == "within_buckets_gain":
            overall = df[df.measure == "overall_gain"].set_index("run").reindex(runs)
            ax.bar(x - 0.2, overall["value"], 0.4, color=[PALETTE[i] for i in range(len(runs))], alpha=0.35)
            ax.bar(x + 0.2, sub["value"].fillna(0), 0.4, color=[PALETTE[i] for i in range(len(runs))])
        else:
            ax.bar(x, sub["value"], 0.6, yerr=err, capsize=3, color=[PALETTE[i] for i in range(len(runs))])
        ax.axhline(ref, color="#555", linewidth=0.8)
        if measure == "rougeL":
            ax.axhline(-0.01, color="#a00", linestyle="--", linewidth=0.8, label="goal: ≥ −0.01")
            ax.legend(fontsize=7)
        if measure in ("distinct_kept",):
            ax.axhline(0.95, color="#a00", linestyle="--", linewidth=0.8, label="goal: ≥ 0.95")
            ax.legend(fontsize=7)
        if measure == "length_ratio":
            for bound in (0.8, 1.2):
                ax.axhline(bound, color="#a00", linestyle="--", linewidth=0.8,
                           label="goal: x0.8-1.2" if bound == 0.8 else None)
            ax.legend(fontsize=7)
        ax.set_xticks(x, runs, rotation=20, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("PPO from the same toxic summarizer, four rewards / samplers (test dialogues, greedy)")
    fig.tight_layout()
    _save(fig, png, df, csv, note, caption="Paired differences over the test dialogues with 95% bootstrap CIs (top "
          "row), ratios after / before (distinct, length), and the course's reward (classifier margin) gained\n"
          "overall and within summary-length buckets: a gain that vanishes inside the buckets came from the length. "
          "Red dashes: the goals.")
