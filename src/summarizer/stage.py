"""What every stage script shares: argument parsing, logging and turning known errors into exit code 1."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from summarizer.errors import USER_ERRORS

log = logging.getLogger("summarizer")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    return p


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    # transformers/datasets are chatty at INFO; keep their warnings.
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_stage(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    setup_logging()
    try:
        main(argv)
    except USER_ERRORS as err:
        log.error("%s", err)
        sys.exit(1)
