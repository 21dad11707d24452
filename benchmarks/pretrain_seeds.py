"""Does the learning profile's pretraining learn to copy on every seed? The pretraining stage alone, once per seed.

For each seed: the profile's base (configs/laptop.yaml, with ``--set`` overrides on top) is pretrained exactly as
``base_model`` pretrains it, on the real DialogSum, then probed as ``base_model`` probes it
(``pretraining.copy_probe``: teacher-forced accuracy on validation windows given the window vs given another
dialogue's). Printed per seed: the step at which the training loss first fell below ``--onset-loss`` (the sudden
drop that marks the copy: about 4.4 → 2.5 within 100 steps when it comes), the final validation loss, and the copy
gain the gate reads.

    python benchmarks/pretrain_seeds.py --seeds 42 7 2 5 [--set model.pretrain.lr=5e-3 ...] [--json]

Each seed is one pretraining (about 4 minutes for the profile's 2,400 steps on 2 cores). ``--jobs 2`` runs two
seeds at once, one thread each: on 2 cores that is faster for a model this small (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

from benchmarks_common import ROOT, parser, report

sys.path.insert(0, str(ROOT / "scripts"))  # demo.profile_params: the profile applied exactly as `make laptop` does
from demo import profile_params  # noqa: E402


def profile_raw(data: str, sets: list[str]) -> dict:
    """params.yaml with the learning profile applied (as ``make laptop`` does), then ``--set key=value``s."""
    raw = profile_params(yaml.safe_load((ROOT / "params.yaml").read_text()), [ROOT / "configs/laptop.yaml"], data)
    for item in sets:
        key, _, value = item.partition("=")
        node = raw
        *parents, leaf = key.split(".")
        for k in parents:
            node = node[k]
        if leaf not in node:
            raise SystemExit(f"--set {item}: no key {key!r} in the profile's params")
        node[leaf] = yaml.safe_load(value)
    return raw


def onset(curve: list[tuple[int, float]], below: float) -> int | None:
    return next((step for step, loss in curve if loss < below), None)


def one_seed(raw: dict, seed: int, threads: int, onset_loss: float, init_seed: int | None) -> dict:
    import torch

    torch.set_num_threads(threads)
    from summarizer.config import parse_params
    from summarizer.data import prepare_splits
    from summarizer.device import select_runtime
    from summarizer.pretraining import pretrain_small_t5

    if init_seed is not None:  # the model's initialisation from init_seed, all else (data order, dropout) from seed
        import summarizer.pretraining as pretraining

        build = pretraining.build_tiny_t5
        pretraining.build_tiny_t5 = lambda arch, tokenizer, _seed, **kw: build(arch, tokenizer, init_seed, **kw)
    cfg = parse_params(raw | {"seed": seed})
    d = cfg.data
    splits = prepare_splits(d.source, d.revision, seed, d.max_train_samples, d.max_validation_samples,
                            d.max_test_dialogues)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out, live = Path(tmp) / "base", Path(tmp) / "live"
        info = pretrain_small_t5(cfg.model.tiny, cfg.model.pretrain, train_rows=splits["train"],
                                 validation_rows=splits["validation"],
                                 max_source_tokens=cfg.prompt.max_source_tokens, seed=seed,
                                 runtime=select_runtime("cpu", "fp32", deterministic=cfg.deterministic),
                                 out_dir=out, work_dir=Path(tmp) / "work", live_dir=live,
                                 attention=cfg.model.attention)
        rows = (live / "plots/metrics/loss.tsv").read_text().splitlines()[1:]
        curve = [(int(s), float(v)) for s, v in (r.split("\t") for r in rows)]
    by_step = dict(curve)
    return {"seed": seed, "init_seed": init_seed, "onset_step": onset(curve, onset_loss),
            "eval_loss": info["pretraining"]["eval_loss"],
            "train_loss": {s: round(by_step[s], 3) for s in (200, 400, 600, 800, 1000, 1200, 1600, 2000, 2400)
                           if s in by_step},
            "probe": info["copy"], "seconds": round(time.perf_counter() - start)}


def main(argv=None) -> dict:
    p = parser(__doc__)
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4, 5, 6, 7])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a profile param to change (dotted key, YAML value); repeatable")
    p.add_argument("--init-seed", type=int, help="initialise every run's model from this seed (the rest: --seeds)")
    p.add_argument("--jobs", type=int, default=1, help="seeds run at once (threads are split between them)")
    p.add_argument("--threads", type=int, help="torch threads per run (default: the cores split between the jobs)")
    p.add_argument("--onset-loss", type=float, default=3.0, help="the training loss that marks the copy's onset")
    args = p.parse_args(argv)
    raw = profile_raw(args.data, args.set)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(one_seed, [raw] * len(args.seeds), args.seeds, [threads] * len(args.seeds),
                             [args.onset_loss] * len(args.seeds), [args.init_seed] * len(args.seeds)))
    reached = sum(r["onset_step"] is not None for r in runs)
    line = (f"{' '.join(args.set) or 'the profile as shipped'}: the copy (train loss < {args.onset_loss}) on "
            f"{reached} of {len(runs)} seeds; " + "; ".join(
                f"seed {r['seed']}: onset {r['onset_step'] or 'never'}, eval loss {r['eval_loss']}, copy gain "
                f"{r['probe']['copy_gain']} ({r['probe']['copy_accuracy']} vs {r['probe']['copy_accuracy_other']}), "
                f"{r['seconds']} s" for r in runs))
    return report(line, {"set": args.set, "runs": runs}, args.json)


if __name__ == "__main__":
    main()
