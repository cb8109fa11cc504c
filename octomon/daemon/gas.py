"""The gas poll (SPEC §11): a scheduled job (``octomon.daemon.schedule``), not a poll cycle.

Every ``GAS_POLL_INTERVAL_SECONDS`` at the installation's offset (never at hh:00/hh:30), one
window ``[gas cursor - 2 h, now)`` of at most 6 h at ``HALF_HOURLY`` grouping: the gas
:class:`~octomon.daemon.stream.Stream`, under the rules of SPEC §4.1 with its own cursor (the
clock rule included), stored through the monitor's writer -- InfluxDB ``gas_consumption``,
or gas lines in the cache when InfluxDB is away -- and counted into the tally. At defaults
that is two calls an hour (one per run; a token renewal is the telemetry's).

A server without gas, or an account without a smart gas meter, costs one account query and
nothing after: "no gas" is kept in ``state.json`` (``gas_absent``, ``gas_absent_at``), so a
restart asks nothing, and is asked once more a week on (``OctopusClient.gas``). Today's
totals (UK day) are kept in ``state.json`` so a restart does not zero them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from octomon.alerts.policy import Alert, AlertPolicy
from octomon.daemon.status import Status
from octomon.daemon.stream import StoredLike, Stream
from octomon.latch import Latch
from octomon.octopus.gas import GasMeter
from octomon.readings import GasReading, format_time
from octomon.state import GasDay, State, StateStore

log = logging.getLogger(__name__)

MAX_CALLS = 2  # one window of at most 6 h, plus a token renewal should it fall due


class GasClient(Protocol):
    def gas(self) -> GasMeter | None: ...


@dataclass
class GasToday:
    """Today's gas (UK day), from the half-hours stored; what the panel and status show."""

    day: str = ""  # ISO date, UK
    half_hours: dict[str, tuple[float, float, float]] | None = None  # readAt -> kWh, m³, GBP
    last_reading_at: datetime | None = None

    def add(self, readings: Sequence[GasReading], now: datetime) -> None:
        day = uk_date(now)
        if day != self.day or self.half_hours is None:
            self.day, self.half_hours = day, {}
        for r in readings:
            if self.last_reading_at is None or r.read_at > self.last_reading_at:
                self.last_reading_at = r.read_at
            if uk_date(r.read_at) == day:
                self.half_hours[format_time(r.read_at)] = (
                    r.consumption_delta or 0.0,
                    r.volume_delta or 0.0,
                    r.cost_delta_with_tax
                    if r.cost_delta_with_tax is not None
                    else r.cost_delta or 0.0,
                )

    def totals(self, now: datetime) -> tuple[float, float, float] | None:
        """(kWh, m³, GBP inc VAT where known) of today, or None when nothing is known today."""
        if self.day != uk_date(now) or not self.half_hours:
            return None
        kwh, m3, gbp = (sum(v[i] for v in self.half_hours.values()) for i in range(3))
        return kwh, m3, gbp

    @classmethod
    def of(cls, kept: GasDay | None) -> GasToday:
        """From ``state.json`` (parsed there)."""
        if kept is None:
            return cls()
        return cls(kept.day, dict(kept.half_hours), kept.last_reading_at)

    def kept(self) -> GasDay:
        """For ``state.json``."""
        return GasDay(self.day, dict(self.half_hours or {}), self.last_reading_at)


def uk_date(at: datetime) -> str:
    """The UK calendar date (GMT/BST) of ``at``: daily totals follow UK time (SPEC §3)."""
    from zoneinfo import ZoneInfo

    return at.astimezone(ZoneInfo("Europe/London")).date().isoformat()


def next_anchor(now: datetime, interval: int) -> datetime:
    """The next multiple of ``interval`` seconds since the epoch: every half-hour at the
    defaults, so the scheduler's slot is hh:00/hh:30 + the installation's offset."""
    t = int(now.timestamp())
    return datetime.fromtimestamp(t - t % interval + interval, timezone.utc)


class GasJob:
    """One gas window per run; see the module docstring."""

    name = "gas"
    max_calls = MAX_CALLS

    def __init__(
        self,
        *,
        client: GasClient,
        stream: Stream[GasReading, StoredLike],
        store: StateStore,
        policy: AlertPolicy,
        emit: Callable[[Sequence[Alert]], None],
        interval: int,
    ) -> None:
        self.client = client
        self.stream = stream
        self.store = store
        self.policy = policy
        self.emit = emit
        self.interval = interval
        self.today = GasToday()
        self.meter: GasMeter | None = None
        self.last_result: str = "not run yet"
        self._loaded = False
        self._saved_absent: tuple[str, datetime] | None = None
        self._saving = Latch(log)

    def load(self, state: State) -> None:
        """Take the gas cursor and today's totals from ``state.json`` (once, at start)."""
        self._loaded = True
        self.stream.load(state)
        self.today = GasToday.of(state.gas_today)

    def run(self, now: datetime) -> datetime:
        if not self._loaded:
            self.load(self.store.load())
        cursor = self.stream.cursor
        if cursor.clock_went_back(now):
            log.warning(
                "gas: the clock is earlier than the gas cursor; fetching again from %s",
                format_time(cursor.at) if cursor.at else "two hours back",
            )
        self.meter = self.client.gas()
        if self.meter is None:
            self.last_result = "no gas meter"
            self._save_absent()
            return next_anchor(now, self.interval)
        start, end = self.stream.window(now)
        if end > start:
            start, end, readings = self.stream.fetch(start, end, now)
            if end >= now:  # a catch-up window is old by design: staleness is judged at now
                self.emit(self.policy.gas(now, readings[-1].read_at if readings else None))
            _, outcome = self.stream.keep(readings, end, now)
            stored = [r for r in outcome.stored if isinstance(r, GasReading)]
            self.today.add(stored, now)
            self.last_result = (
                f"gas {format_time(start)}..{format_time(end)}: {len(readings)} half-hour(s), "
                f"{len(stored)} stored"
                + (f", {len(outcome.unstored)} NOT stored" if outcome.unstored else "")
            )
            log.info("%s", self.last_result)
        self._save()
        return next_anchor(now, self.interval)

    def fill(self, status: Status, now: datetime) -> None:
        """Today's gas and the newest half-hour, for the panel and ``status.json``."""
        totals = self.today.totals(now)
        status.gas_today_kwh, status.gas_today_m3, status.gas_today_gbp = totals or (
            None,
            None,
            None,
        )
        status.gas_last_reading_at = self.today.last_reading_at

    def _save_absent(self) -> None:
        """Keep "no gas" (and when the account said it) in ``state.json``, so that a
        restart asks nothing about gas for a week; written only when it changed."""
        absent = getattr(self.client, "gas_absent", None)
        if absent is None or absent == self._saved_absent:
            return
        status, at = absent

        def mutate(state: State) -> None:
            state.gas_absent, state.gas_absent_at = status, at

        if self._write(mutate):
            self._saved_absent = absent

    def _save(self) -> None:
        """Persist the gas cursor, the meter and today's totals; retried next run on failure."""
        cursor, meter, today = self.stream.saver(), self.meter, self.today.kept()

        def mutate(state: State) -> None:
            cursor(state)
            if meter is not None:
                state.gas_device_id, state.gas_mprn, state.gas_serial, state.gas_units = (
                    meter.device_id,
                    meter.mprn,
                    meter.serial,
                    meter.units,
                )
                state.gas_others = meter.others_text()
            state.gas_today = today
            if meter is not None:
                state.gas_absent = state.gas_absent_at = None

        if self._write(mutate):
            self.stream.saved()

    def _write(self, mutate: Callable[[State], None]) -> bool:
        """One ``state.json`` update; a failure is logged once and retried at the next run."""
        try:
            self.store.update(mutate)
        except OSError as exc:
            self._saving.fail(
                "could not save state.json (%s); retrying at the next gas run",
                exc.strerror or exc,
                level=logging.ERROR,
            )
            return False
        self._saving.ok("gas: state.json saved again")
        return True
