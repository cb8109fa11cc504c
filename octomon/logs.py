"""Logging set-up: one handler on the root logger whose formatter scrubs secrets.

Scrubbing the *formatted* record (message, arguments, traceback) catches secrets from
any logger, urllib3's DEBUG lines included, and from exception text.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from octomon import redact

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class ScrubbingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact.scrub(super().format(record))

    def formatException(self, ei: object) -> str:
        return redact.scrub(super().formatException(ei))  # type: ignore[arg-type]


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is *now* (test runners swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


_handler: logging.Handler | None = None


def setup(level: str = "info", stream: TextIO | None = None) -> None:
    """Install (or re-level) the scrubbing handler. Safe to call more than once."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    _handler.setFormatter(
        ScrubbingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root.addHandler(_handler)
    root.setLevel(LEVELS.get(level.lower(), logging.INFO))
    # Below DEBUG, keep third-party chatter quiet; at DEBUG it is scrubbed like ours.
    if root.level > logging.DEBUG:
        for name in ("urllib3", "asyncio"):
            logging.getLogger(name).setLevel(logging.WARNING)
    else:
        for name in ("urllib3", "asyncio"):
            logging.getLogger(name).setLevel(logging.NOTSET)
