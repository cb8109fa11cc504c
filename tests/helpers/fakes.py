"""Fakes written once: the InfluxDB sink that unit tests hand to the writer, sync and jobs.

A test that needs a real server uses VictoriaMetrics or the emulator (``services.py``,
``influx_emulator.py``); these stand in where the unit under test only calls
``write_lines(body, count)``.
"""

from __future__ import annotations

from collections.abc import Callable

from octomon.errors import InfluxUnavailable
from octomon.readings import Reading
from tests.helpers.lineproto import readings_of

Answer = Callable[[bytes], Exception | None]  # a request's body -> the error to raise, or None


class FakeSink:
    """Records every request; refuses or fails one as the test says.

    ``down = True``: every request raises :class:`InfluxUnavailable`; ``error``: every
    request raises it; ``answer(body)``: decides request by request. ``bodies`` holds the
    accepted requests, ``counts`` the reading count of every request (failed ones too).
    """

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer = answer
        self.down = False
        self.error: Exception | None = None
        self.bodies: list[bytes] = []
        self.counts: list[int] = []

    def write_lines(self, body: bytes | str, count: int) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.counts.append(count)
        if self.down:
            raise InfluxUnavailable("InfluxDB at http://127.0.0.1:1 is unreachable")
        if self.error is not None:
            raise self.error
        refused = self.answer(data) if self.answer is not None else None
        if refused is not None:
            raise refused
        self.bodies.append(data)

    def close(self) -> None:
        pass

    @property
    def requests(self) -> int:
        return len(self.counts)

    @property
    def lines(self) -> list[bytes]:
        """Every accepted line, in the order sent."""
        return [line for body in self.bodies for line in body.splitlines() if line]

    def readings(self) -> list[Reading]:
        """The accepted ``energy_consumption`` lines, parsed back."""
        return [r for body in self.bodies for r in readings_of(body)]

    def stamps(self) -> list[int]:
        """The timestamp of every accepted line."""
        return [int(line.rsplit(b" ", 1)[1]) for line in self.lines]
