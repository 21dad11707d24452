"""Stage base_model: materialise the base summarizer and its tokenizer: a Hub id, a local folder, the tiny random T5,
or a small T5 pretrained here on the train dialogues (pretrain-small-t5: the learning profile's base)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from summarizer.config import load_params
from summarizer.data import tokenizer_texts
from summarizer.device import select_pinned_runtime
from summarizer.hub import recorded
from summarizer.io import read_jsonl, write_json
from summarizer.modeling import materialize_summarizer
from summarizer.pretraining import PRETRAINED_T5, check_copy, pretrain_small_t5
from summarizer.stage import parser, run_stage

log = logging.getLogger("summarizer")


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--train", required=True, help="text for a tokenizer trained here (and pretraining)")
    p.add_argument("--validation", required=True, help="pretraining's validation loss")
    p.add_argument("--out", required=True, help="the saved model and tokenizer")
    p.add_argument("--work", required=True, help="pretraining's features and checkpoints (a rerun resumes)")
    p.add_argument("--live", required=True, help="dvclive folder: pretraining's loss curves")
    p.add_argument("--metrics", required=True)
    p.add_argument("--hub", help="the commit stage hub_revisions resolved (default: the params' revision as is)")
    args = p.parse_args(argv)
    cfg = load_params(args.params)
    m = cfg.model
    train = read_jsonl(args.train)
    if m.name == PRETRAINED_T5:
        runtime = select_pinned_runtime(cfg.device, cfg.precision, deterministic=cfg.deterministic)
        info = pretrain_small_t5(m.tiny, m.pretrain, train_rows=train, validation_rows=read_jsonl(args.validation),
                                 max_source_tokens=cfg.prompt.max_source_tokens, seed=cfg.seed, runtime=runtime,
                                 out_dir=args.out, work_dir=args.work, live_dir=args.live,
                                 attention=m.attention)
        problem = check_copy(info["copy"], m.pretrain.min_copy_gain, m.pretrain.on_low_copy)
        if problem:  # on_low_copy: warn
            log.warning("WARNING: %s (on_low_copy: warn, so the pipeline goes on)", problem)
    else:
        hub = recorded(args.hub, m.name, m.revision)
        info = materialize_summarizer(m.name, hub.load_revision(), m.tiny, tokenizer_texts(train),
                                      cfg.prompt.max_source_tokens, cfg.seed, args.out)
        # The curve folder is a DVC output either way: say that nothing was pretrained.
        shutil.rmtree(args.live, ignore_errors=True)
        write_json(Path(args.live) / "metrics.json", {"pretrained": False, "model": m.name})
        if hub.revision is not None:  # from the Hub: the params' revision and the commit it resolved to
            info |= {"revision": hub.revision, "commit": hub.commit}
    write_json(args.metrics, info)


if __name__ == "__main__":
    run_stage(main)
