"""Log a failing thing once, and say "recovered" once (STYLE rule 6).

Every place that retries something quietly — a state file that cannot be written, a job whose
points InfluxDB refuses, the tally on a full disk — holds one :class:`Latch`: the first
failure is logged, the repeats are not, and the first success after a failure is logged once.
"""

from __future__ import annotations

import logging


class Latch:
    """A failing/working flag that logs on its changes only."""

    __slots__ = ("failing", "log")

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.failing = False

    def fail(self, message: str, *args: object, level: int = logging.WARNING) -> bool:
        """A failure: logged when it is the first of a run; True when it was."""
        first = not self.failing
        if first:
            self.log.log(level, message, *args)
        self.failing = True
        return first

    def ok(self, message: str | None = None, *args: object, level: int = logging.INFO) -> bool:
        """A success: ``message`` logged when it ends a run of failures; True when it did."""
        recovered = self.failing
        if recovered and message is not None:
            self.log.log(level, message, *args)
        self.failing = False
        return recovered
