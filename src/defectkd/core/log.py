"""defectkd's messages go through `logging` (logger "defectkd"). Libraries leave handlers to the application:
the CLI calls `setup_logging()` so progress lines reach stderr; a Python user may do the same, or attach their own."""

from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("defectkd")


def setup_logging(level: int = logging.INFO) -> None:
    """Plain one-line messages on stderr (once, however often it is called)."""
    if any(getattr(h, "_defectkd", False) for h in LOGGER.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._defectkd = True  # type: ignore[attr-defined]
    LOGGER.addHandler(handler)
    LOGGER.setLevel(level)
    LOGGER.propagate = False
    for quiet in ("defectkd.serve", "defectkd.sink", "defectkd.sources"):  # services: warnings only, as before
        child = logging.getLogger(quiet)
        if child.level == logging.NOTSET:
            child.setLevel(logging.WARNING)
