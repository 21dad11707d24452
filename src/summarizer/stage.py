"""What every stage script shares: argument parsing, logging and turning known errors into exit code 1."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from summarizer.errors import USER_ERRORS
from summarizer.logs import setup_logging

log = logging.getLogger("summarizer")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    return p


def run_stage(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    setup_logging()
    try:
        main(argv)
    except USER_ERRORS as err:
        log.error("%s", err)
        sys.exit(1)
