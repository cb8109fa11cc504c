"""The daemon's scheduled jobs beside telemetry: tariffs and settled consumption.

**Tariffs** (SPEC §9): at start, then daily at 16:05 UK (plus the installation offset the
scheduler adds); while tomorrow's half-hourly prices are not published yet, hourly at hh:05
UK until 23:00 UK.

**Settled** (SPEC §10): fetch settled half-hours, store them, reconcile, alert.

When: at start (without a call when yesterday is already in ``settled.json``), daily at
09:00 UK (+ the installation offset the scheduler adds), then every 6 h while yesterday is
still missing. What: for each meter, ``[fetched cursor, now)`` (first start: the last 7 UK days),
kept in ``CACHE_DIR/settled.json`` for the commands, and written to InfluxDB as
``energy_settled`` points from the *written* cursor, with ``energy_reconciliation`` points
for the last 7 days. Two cursors per meter in ``state.json``: ``fetched`` (what the API has
given) and ``written`` (what InfluxDB acknowledged). An InfluxDB failure moves neither
``written`` nor costs another API call: the points are retried from the file at the next
half-hour slot. Settled points are never put in the readings cache (the API and the file
are their replay log).

Alerts: at start and after each run, every settled UK day of the last 7 not yet judged gets
one verdict, kept in ``state.json`` so a restart does not repeat it: a warning when the Home
Mini caught < 95 % of the energy or of the readings, an info log line otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from octomon.alerts.policy import Alert, AlertPolicy, day_label
from octomon.billing.reconcile import day_report, half_hour_recons
from octomon.billing.settled import (
    DEFAULT_CV,
    SettledData,
    SettledStore,
    Units,
    _day_in,
    absent,
    electricity_in_kwh,
    keep,
)
from octomon.billing.tariffs import PUBLISH, TariffRun, Tariffs
from octomon.errors import InfluxError, NotFound
from octomon.latch import Latch
from octomon.octopus.consumption import Meter, Rest, fetch
from octomon.octopus.tariffs import is_dual_register
from octomon.readings import format_time
from octomon.state import SettledCursors, State, StateStore
from octomon.store import points
from octomon.store.tally import Tally
from octomon.uktime import HALF_HOUR, UK, UTC, uk_day, uk_midnight
from octomon.units import GAS

if TYPE_CHECKING:
    from octomon.daemon.status import Status

log = logging.getLogger(__name__)

FIRST_DAYS = 7
RETRY = timedelta(hours=6)
DAILY = time(9, 0)  # UK
ALERTED_KEEP = 40  # days


LineSink = points.LineSink


def settled_line(meter: Meter, start: datetime, kwh: float, volume: float | None = None) -> str:
    """The ``energy_settled`` point (SPEC §3): kWh, and a gas meter's m³ as ``volume``."""
    return points.settled(meter.fuel, meter.direction, meter.serial, kwh, start, volume)


LAST_TRY = time(23, 0)  # UK: tomorrow's prices are asked for hourly from PUBLISH until here


def next_anchor(now: datetime, complete: bool) -> datetime:
    """When the job runs next (before the scheduler's offset): 16:05 UK daily; hourly at
    hh:05 while tomorrow's prices are missing, until 23:00 UK."""
    local = now.astimezone(UK)
    publish = datetime.combine(local.date(), PUBLISH, UK)
    if local < publish:
        return publish.astimezone(UTC)
    if not complete:
        # UK offsets are whole hours: hh:05 UTC is hh:05 UK.
        at = now.astimezone(UTC).replace(minute=5, second=0, microsecond=0)
        if at <= now:
            at += timedelta(hours=1)
        if at.astimezone(UK).date() == local.date() and at.astimezone(UK).time() < LAST_TRY:
            return at
    return datetime.combine(local.date() + timedelta(days=1), PUBLISH, UK).astimezone(UTC)


class TariffsJob:
    """The scheduled job (``octomon.daemon.schedule``): returns the anchor of its next run."""

    name = "tariffs"

    def __init__(self, tariffs: Tariffs) -> None:
        self.tariffs = tariffs
        self.last: TariffRun | None = None
        self._named: set[str] = set()
        self.max_calls = self._estimate()

    def _estimate(self) -> int:
        """The calls of one run (the scheduler keeps that much room beside telemetry): the
        account, then unit rates (day and night for E-2R) and standing charges per meter
        point, one page each (page_size 1500: more than 30 days of half-hours)."""
        cached = self.tariffs.cached()
        points = cached.points if cached is not None else []
        if not points:
            return 5  # the account, an electricity and a gas meter point
        return 1 + sum(
            3 if is_dual_register(p.agreements[-1].tariff_code) else 2
            for p in points
            if p.agreements
        )

    def fill_status(self, status: Status, now: datetime) -> None:
        """The import rate of the current half-hour into the status (panel, status.json)."""
        price = self.tariffs.current_price(now)
        status.unit_rate = float(price.unit_rate) if price is not None else None
        status.tariff_code = price.tariff_code if price is not None else None

    def run(self, now: datetime) -> datetime:
        result = self.tariffs.refresh(now)
        self.last = result
        for why in result.unpriced:  # one warning each for the process's life
            if why not in self._named:
                self._named.add(why)
                log.warning("tariffs: %s; the other meter points are fetched and stored", why)
        self.max_calls = self._estimate()
        if result.repriced:
            log.info(
                "tariffs: %d stored price point(s) written again, priced for %s (no API call)",
                result.repriced,
                self.tariffs.pricing.signature(),
            )
        if result.points:
            log.info(
                "tariffs: %d price point(s) %s (%d API call(s))",
                result.points,
                "stored" if result.stored else "kept in the cache",
                result.calls,
            )
        return next_anchor(now, result.complete)


# --- settled consumption ---------------------------------------------------------------


# Per meter: ``fetched`` (the API gave up to here) and ``written`` (InfluxDB took); the days
# judged. Kept in state.json ("settled").
Cursors = SettledCursors


def first_since(now: datetime) -> datetime:
    """The first start's window: the last 7 UK days."""
    return uk_midnight(uk_day(now) - timedelta(days=FIRST_DAYS))


def next_daily(now: datetime) -> datetime:
    """The next 09:00 UK strictly after ``now``."""
    today = uk_day(now)
    at = datetime.combine(today, DAILY, UK).astimezone(timezone.utc)
    if at <= now:
        at = datetime.combine(today + timedelta(days=1), DAILY, UK).astimezone(timezone.utc)
    return at


def floor_half_hour(now: datetime) -> datetime:
    t = int(now.timestamp())
    return datetime.fromtimestamp(t - t % 1800, timezone.utc)


class SettledJob:
    """A :class:`~octomon.daemon.schedule.Job`; see the module docstring."""

    name = "settled"

    def __init__(
        self,
        *,
        rest: Rest,
        meters: Callable[[], list[Meter]],
        store: StateStore,
        cache_dir: Path,
        sink: LineSink | None,
        policy: AlertPolicy,
        emit: Callable[[Sequence[Alert]], None],
        max_meters: int = 3,
        calorific_value: Decimal = DEFAULT_CV,
        units: Units = electricity_in_kwh,
    ) -> None:
        self.rest = rest
        self.discover = meters
        self.store = store
        self.settled = SettledStore(cache_dir)
        self.tally = Tally(cache_dir)
        self.sink = sink
        self.policy = policy
        self.emit = emit
        self.calorific_value = calorific_value
        self.units = units
        self.max_calls = 1 + max_meters  # account discovery, then one request per meter
        self._meters: list[Meter] | None = None
        self._fetch_at: datetime | None = None  # None: fetch at the next run
        self._writing = Latch(log)  # InfluxDB not taking the points: logged once

    # --- the scheduled run --------------------------------------------------------------

    def run(self, now: datetime) -> datetime:
        """Fetch if due, write what InfluxDB lacks, judge days; the next anchor (UTC)."""
        start = self._fetch_at is None  # at start: yesterday already in the file costs no call
        if start and self.complete(now, self.settled.load()):
            self._fetch_at = next_daily(now)
        if self._fetch_at is None or now >= self._fetch_at:
            data = self.fetch(now)
            self._fetch_at = self.next_fetch(now, data)
        written = self.write(now)
        self.judge(now)
        assert self._fetch_at is not None
        if not written:  # InfluxDB was away: try the points again at the next half-hour
            return min(self._fetch_at, floor_half_hour(now) + HALF_HOUR)
        return self._fetch_at

    def meters(self) -> list[Meter]:
        if self._meters is None:
            self._meters = self.discover()
        return self._meters

    def fetch(self, now: datetime) -> SettledData:
        """Every meter from its fetched cursor to now, into ``settled.json``; raises the
        Octopus errors (the scheduler retries) and ``OSError``."""
        cursors = self.store.load().settled
        data = self.settled.load()
        first = first_since(now)
        moved: dict[str, datetime] = {}
        try:
            for meter in list(self.meters()):
                if absent(data, meter, now):
                    continue
                since = max(cursors.fetched.get(meter.key, first), first - timedelta(days=28))
                try:
                    values = fetch(self.rest, meter, since, now)
                except NotFound:  # a new meter, a page that vanished, an old or non-smart one
                    log.info(
                        "settled: the API has no consumption for meter %s; asking again "
                        "at the next daily fetch",
                        meter.serial,
                    )
                    self.settled.add(meter, {}, now, None, since)  # the meter stays known
                    continue
                data = keep(self.settled, meter, values, now, self.units, since)
                if values:
                    moved[meter.key] = max(values) + HALF_HOUR
                    log.info(
                        "settled %s %s: %d half-hours up to %s",
                        meter.fuel,
                        meter.direction,
                        len(values),
                        format_time(max(values) + HALF_HOUR),
                    )
        finally:  # what was fetched before a failure is not asked for again
            if moved:
                self._update(lambda c: c.fetched.update(moved))
        return data

    def complete(self, now: datetime, data: SettledData) -> bool:
        """Yesterday is in for every meter that has settled data (and there is one)."""
        yesterday = uk_day(now) - timedelta(days=1)
        known = [m for m in self.meters() if m.key in data.meters and data.meters[m.key].values]
        return bool(known) and all(_day_in(data, m, yesterday) for m in known)

    def next_fetch(self, now: datetime, data: SettledData) -> datetime:
        """Tomorrow's 09:00 UK once yesterday is in; else 6 h on (at most the next 09:00)."""
        daily = next_daily(now)
        if self.complete(now, data):
            return daily
        return min(floor_half_hour(now) + RETRY, daily)

    def write(self, now: datetime) -> bool:
        """``energy_settled`` from each written cursor, and the last 7 days' reconciliation.

        False when InfluxDB did not take them (logged once per state change); local mode
        (no sink) keeps only the file, and the written cursor follows the fetched one.
        """
        data = self.settled.load()
        data.calorific_value = self.calorific_value
        cursors = self.store.load().settled
        lines: list[str] = []
        moved: dict[str, datetime] = {}
        for key, entry in data.meters.items():
            if not entry.usable:  # written once its unit is known (named at the fetch)
                continue
            since = cursors.written.get(key)
            new = {k: v for k, v in entry.values.items() if since is None or k >= since}
            if new:
                gas = entry.meter.fuel == GAS
                lines += [
                    settled_line(
                        entry.meter, k, data.kwh(entry, v), data.m3(entry, v) if gas else None
                    )
                    for k, v in sorted(new.items())
                ]
                moved[key] = max(new) + HALF_HOUR
        if not moved:
            return True
        if self.sink is not None:
            recons = half_hour_recons(data, self.tally.load(), first_since(now), now)
            lines += [r.line() for r in recons]
            try:
                points.write(self.sink, lines)
            except InfluxError as exc:
                self._writing.fail("settled: InfluxDB did not take the points (%s); retrying", exc)
                return False
            self._writing.ok("settled: InfluxDB takes the points again")
        self._update(lambda c: c.written.update(moved))
        return True

    # --- the verdicts -------------------------------------------------------------------

    def judge(self, now: datetime) -> list[date]:
        """One verdict for every settled UK day of the last 7 not yet judged; the days."""
        cursors = self.store.load().settled
        data, tally = self.settled.load(), self.tally.load()
        today = uk_day(now)
        judged: list[date] = []
        alerts: list[Alert] = []
        for n in range(FIRST_DAYS, 0, -1):
            day = today - timedelta(days=n)
            if day.isoformat() in cursors.alerted:
                continue
            report = day_report(data, tally, day)
            if not report.judged or report.settled_kwh is None:
                continue
            judged.append(day)
            readings = f"{report.readings:,} of {report.expected_readings:,}"
            if report.short:
                alerts += self.policy.home_mini_short(
                    now, day, report.settled_kwh, report.home_mini_kwh, readings
                )
            else:
                share = (
                    report.home_mini_kwh / report.settled_kwh * 100 if report.settled_kwh else 100.0
                )
                log.info(
                    "%s: the Home Mini caught %.1f%% of your %.2f kWh (%s readings)",
                    day_label(day),
                    share,
                    report.settled_kwh,
                    readings,
                )
        if judged:
            self._update(lambda c: c.alerted.extend(d.isoformat() for d in judged))
            if alerts:
                self.emit(alerts)
        return judged

    def _update(self, change: Callable[[Cursors], None]) -> None:
        def mutate(state: State) -> None:
            change(state.settled)
            state.settled.alerted = sorted(state.settled.alerted)[-ALERTED_KEEP:]

        self.store.update(mutate)
