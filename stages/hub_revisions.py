"""Stage hub_revisions: the commit of every Hub download (data, base model, classifier), one file each.

``always_changed`` in dvc.yaml: it runs on every ``dvc repro`` (three small Hub queries, or cache reads offline).
A file whose commit did not move is rewritten byte-identical, so nothing downstream reruns; a branch that moved
reruns what depends on that download. See ``summarizer.hub``.
"""

from __future__ import annotations

from pathlib import Path

from summarizer.config import load_params
from summarizer.hub import resolve
from summarizer.io import write_json
from summarizer.stage import parser, run_stage


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--out", required=True, help="folder for data.json, model.json and classifier.json")
    args = p.parse_args(argv)
    cfg = load_params(args.params)
    downloads = {"data": (cfg.data.source, cfg.data.revision, "dataset"),
                 "model": (cfg.model.name, cfg.model.revision, "model"),
                 "classifier": (cfg.classifier.name, cfg.classifier.revision, "model")}
    for key, (name, revision, repo_type) in downloads.items():
        resolved = resolve(name, revision, repo_type, key=f"{key}.revision")
        write_json(Path(args.out) / f"{key}.json", resolved.tracked())


if __name__ == "__main__":
    run_stage(main)
