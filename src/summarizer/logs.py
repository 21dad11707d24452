"""One logging setup for the stages, the CLI and the app."""

from __future__ import annotations

import logging

# transformers/datasets/httpx are chatty at INFO; their warnings are kept.
_NOISY = ("httpx", "urllib3", "filelock", "datasets", "transformers")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
