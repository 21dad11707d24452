"""Stage check_params: validate the whole params.yaml before any other stage runs.

DVC deletes a stage's outputs before running its command, so a stage that rejected its params would already have
cost the previous results. Every stage depends on this one's output, which DVC therefore runs first: a bad value or
a misspelled section anywhere in params.yaml stops `dvc repro` here, with every earlier output untouched. The
output's content never changes while the params are valid, so a valid edit reruns only the stages whose own params
changed.
"""

from __future__ import annotations

from summarizer.config import load_params
from summarizer.io import atomic_write_text
from summarizer.stage import parser, run_stage

CHECKED = "params.yaml: valid\n"


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--out", required=True, help="a file written when the params are valid (constant content)")
    args = p.parse_args(argv)
    # Values only: whether this machine has the GPU named by `device` is checked by the stages that use it.
    load_params(args.params)
    atomic_write_text(args.out, CHECKED)


if __name__ == "__main__":
    run_stage(main)
