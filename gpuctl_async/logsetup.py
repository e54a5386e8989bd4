"""Logging: one line per event on stderr, level configurable."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kubernetes_asyncio logs request bodies at DEBUG (job env values): keep it quieter.
    logging.getLogger("kubernetes_asyncio").setLevel(max(logging.INFO, logging.getLevelName(level)))
