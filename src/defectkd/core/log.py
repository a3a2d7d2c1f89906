"""defectkd's messages go through `logging` (logger "defectkd"). Libraries leave handlers to the application:
the CLI calls `setup_logging()` so progress lines reach stderr; a Python user may do the same, or attach their own."""

from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("defectkd")


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is now, so a replaced stream (pytest capture, a notebook) never breaks it."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


def setup_logging(level: int = logging.INFO) -> None:
    """Plain one-line messages on stderr (once, however often it is called)."""
    if any(getattr(h, "_defectkd", False) for h in LOGGER.handlers):
        return
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._defectkd = True  # type: ignore[attr-defined]
    LOGGER.addHandler(handler)
    LOGGER.setLevel(level)
    LOGGER.propagate = False
    for quiet in ("defectkd.serve", "defectkd.sink", "defectkd.sources"):  # services: warnings only, as before
        child = logging.getLogger(quiet)
        if child.level == logging.NOTSET:
            child.setLevel(logging.WARNING)
