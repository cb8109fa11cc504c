"""Keeping the account's prices (SPEC §9): fetched within the budget, stored as ``energy_tariff``.

:class:`Tariffs` fetches what is missing and stores it. Two places remember what is had:

* the **tariff cursor** (``state.json``'s ``tariff_cursor``, per fuel/direction): the end
  of the half-hours and the last UK day stored in InfluxDB. It moves only once InfluxDB
  acknowledged the points (or, in local mode, once they are in ``tariffs.json``), so a
  write that fails is fetched and written again at the next run: the API is the replay
  log, and tariff points are never cached for a later sync. The first start goes 7 days
  back.
* ``CACHE_DIR/tariffs.json``: what was fetched (the meter points, their agreements, the
  prices of the last days and of tomorrow), written atomically, so ``octomon tariff``
  (and the panel) answer without a call. The account itself is re-read once a UK day.

The daemon's scheduled job is :class:`octomon.daemon.jobs.TariffsJob`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from octomon.billing.prices import CACHE_FILE as CACHE_FILE
from octomon.billing.prices import Cached as Cached
from octomon.billing.prices import TariffCache as TariffCache
from octomon.billing.prices import pricing as pricing
from octomon.errors import ApiError, NotFound
from octomon.latch import Latch
from octomon.octopus.pricebook import (
    Book,
    MeterPoint,
    Price,
    Series,
    TariffBook,
    half_hours,
    midnights,
)
from octomon.octopus.published import Pricing, Published
from octomon.octopus.tariffs import fetch, meter_points
from octomon.state import TariffCursor as Cursor
from octomon.store import points
from octomon.uktime import HALF_HOUR, UK, UTC, uk_day, uk_midnight

if TYPE_CHECKING:
    from octomon.config import Settings
    from octomon.octopus.rest import RestClient
    from octomon.state import State, StateStore

log = logging.getLogger(__name__)

FIRST_DAYS = 7  # the first start fetches this many UK days back (as for settled data)
KEEP_DAYS = 8  # days before today kept in tariffs.json
PUBLISH = time(16, 5)  # UK: tomorrow's Agile prices are asked for from here

LineSink = points.LineSink


def horizon(now: datetime) -> datetime:
    """How far ahead prices are asked for: 23:00 UK tomorrow, where the half-hourly prices
    published for tomorrow end (OCTOPUS_REST.md §3); a fixed tariff's last hour of
    tomorrow is fetched the day after, like the rest of that day."""
    return datetime.combine(uk_day(now) + timedelta(days=1), time(23, 0), UK).astimezone(UTC)


def tomorrow_known(book: Book[Any, Any], now: datetime, unpriced: Collection[Series] = ()) -> bool:
    """Every meter point still in force at the horizon is priced up to it (those whose
    rates cannot be had aside: asking hourly would not change that)."""
    end = horizon(now)
    return all(
        (book.covered_until(p.series) or now) >= end
        for p in book.points
        if p.agreement_at(end - HALF_HOUR) is not None and p.series not in unpriced
    )


def lines(book: TariffBook) -> list[str]:
    """``energy_tariff`` line protocol for every price and standing charge in ``book``."""
    out: list[str] = []
    for (fuel, direction), prices in sorted(book.prices.items()):
        for t, p in sorted(prices.items()):
            rates = {"unit_rate": p.unit_rate, "unit_rate_exc_vat": p.unit_rate_exc_vat}
            out.append(points.tariff(fuel, direction, p.tariff_code, rates, t))
    for (fuel, direction), charges in sorted(book.charges.items()):
        for d, c in sorted(charges.items()):
            daily = {
                "standing_charge": c.standing_charge,
                "standing_charge_exc_vat": c.standing_charge_exc_vat,
            }
            out.append(points.tariff(fuel, direction, c.tariff_code, daily, uk_midnight(d)))
    return out


def repriced(
    book: Published, cursors: dict[Series, Cursor], was: Pricing | None, pricing: Pricing
) -> TariffBook:
    """The half-hours and days of ``book`` stored already (behind their cursor) whose price
    under ``pricing`` is not the one they were stored with (``was``; None, not known: all of
    them). A half-hour without a price under ``pricing`` keeps its point."""
    new = book.priced(pricing)
    old = book.priced(was) if was is not None else TariffBook()
    out = TariffBook(list(book.points))
    for series, cursor in cursors.items():
        out.prices[series] = {
            t: p
            for t, p in new.prices.get(series, {}).items()
            if t < cursor.prices and old.price_at(t, *series) != p
        }
        out.charges[series] = {
            d: c
            for d, c in new.charges.get(series, {}).items()
            if d <= cursor.charges and old.standing_charge(d, *series) != c
        }
    return out


def write(sink: LineSink, lines: list[str]) -> None:
    """In batches of :data:`octomon.store.points.BATCH` points."""
    points.write(sink, lines)


# --- fetching and storing ----------------------------------------------------------------------


def _cursors(state: State) -> dict[Series, Cursor]:
    """The tariff cursors in ``state.json`` (``tariff_cursor``, per "fuel/direction")."""
    out: dict[Series, Cursor] = {}
    for key, cursor in state.tariff_cursors.items():
        fuel, direction = key.split("/")
        out[(fuel, direction)] = cursor
    return out


class TariffRun(NamedTuple):
    calls: int  # API requests made
    points: int  # energy_tariff points fetched (and stored, when ``stored``)
    stored: bool  # written to InfluxDB (False in local mode or for the command)
    complete: bool  # tomorrow's prices are all known
    unpriced: tuple[str, ...] = ()  # why a meter point's rates could not be had, one each
    repriced: int = 0  # energy_tariff points stored before, written again for new settings


class Tariffs:
    """Fetch what is missing, keep it in ``tariffs.json``, store it in InfluxDB."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        client: RestClient,
        *,
        state: StateStore | None,
        sink: LineSink | None,
    ) -> Tariffs:
        """The account's tariffs: its number, CACHE_DIR, ECONOMY7_NIGHT, the payment method."""
        assert settings.octopus_account_number
        return cls(
            client,
            settings.octopus_account_number,
            Path(settings.cache_dir),
            pricing=pricing(settings),
            state=state,
            sink=sink,
        )

    def __init__(
        self,
        client: RestClient,
        account_number: str,
        cache_dir: Path,
        *,
        pricing: Pricing,
        state: StateStore | None,
        sink: LineSink | None,
    ) -> None:
        self.client = client
        self.account_number = account_number
        self.pricing = pricing
        self.cache = TariffCache(cache_dir, pricing)
        self.state = state
        self.sink = sink
        self._memory: dict[Series, Cursor] = {}  # the cursor when there is no state.json
        self._memory_priced_as: str | None = None  # and the settings it was priced with
        self._book: TariffBook | None = None  # the latest prices, for the status each cycle
        self._keeping = Latch(log)  # tariffs.json cannot be written (a full disk)
        # (fuel, direction) -> why its rates cannot be had (a 404 or 400 from the products
        # API, a register layout octomon does not price): named once, the others go on
        self.unpriced: dict[Series, str] = {}

    def cursors(self) -> dict[Series, Cursor]:
        return _cursors(self.state.load()) if self.state is not None else dict(self._memory)

    def cached(self) -> Cached | None:
        return self.cache.load()

    def current_price(self, now: datetime) -> Price | None:
        """The import price of the current half-hour (for the panel and status.json)."""
        if self._book is None:
            cached = self.cache.load()
            self._book = cached.book if cached is not None else TariffBook()
        return self._book.price_at(now)

    def _known(self, today: date) -> tuple[Cached | None, Published, list[MeterPoint], date]:
        """What ``tariffs.json`` holds, and the meter points: read from the account once a
        UK day (one request), else those kept."""
        cached = self.cache.load()
        book = cached.published if cached is not None else Published()
        for series, why in (cached.unpriced if cached is not None else {}).items():
            self.unpriced.setdefault(series, why)
        if cached is not None and cached.account_day == today and cached.points:
            return cached, book, list(cached.points), cached.account_day
        return cached, book, meter_points(self.client.account(self.account_number)), today

    def refresh(
        self, now: datetime, *, since: datetime | None = None, store: bool = True
    ) -> TariffRun:
        """Fetch the prices not yet had up to the end of tomorrow (UK).

        ``store`` (the daemon): from the tariff cursor (or ``FIRST_DAYS`` back), written
        to InfluxDB, then the cursor moves; the points stored under other settings
        (OCTOPUS_PAYMENT_METHOD, ECONOMY7_NIGHT) that ``tariffs.json`` still holds are
        re-priced and written again first, without a call. Else (``octomon tariff``): from
        today, or what ``tariffs.json`` lacks, kept there only. ``since`` (``tariff
        --since``): from that instant, stored, the cursor left where it is. Errors
        propagate (nothing of a failed write is lost: the cursor has not moved).
        """
        calls = self.client.calls
        today = uk_day(now)
        _, book, points, account_day = self._known(today)
        cursors = self.cursors()
        redo = TariffBook()
        if store and since is None and self.sink is not None:
            was = self._priced_as()
            if was is not None and was != self.pricing.signature():
                redo = repriced(book, cursors, Pricing.parse(was), self.pricing)
        end = horizon(now)
        first = uk_midnight(today - timedelta(days=FIRST_DAYS))
        fresh = Published(list(points))
        moved: dict[Series, Cursor] = {}
        for series in dict.fromkeys(p.series for p in points):
            if since is not None:
                start, charges_from = since, uk_day(since)
            elif store:
                cursor = cursors.get(series)
                start = cursor.prices if cursor else first
                charges_from = cursor.charges + timedelta(days=1) if cursor else uk_day(first)
            else:
                start = max(uk_midnight(today), book.covered_until(series) or uk_midnight(today))
                known = book.charges.get(series, {})
                charges_from = max([today, *(d + timedelta(days=1) for d in known if d >= today)])
            if start >= end:
                continue
            got = self._fetch(
                series,
                points,
                start,
                end,
                charges_from={series: charges_from},
            )
            if got is None:
                continue
            fresh.merge(got)
            days = got.charges.get(series, {})
            moved[series] = Cursor(
                max(start, got.covered_until(series) or start),
                max([charges_from - timedelta(days=1), *days]),
            )
        book.merge(fresh)
        book = book.since(uk_midnight(today - timedelta(days=KEEP_DAYS)))
        self._book = book.priced(self.pricing)
        kept = self._keep(Cached(book, now, account_day, dict(self.unpriced)))
        stored = False
        if store or since is not None:
            body = lines(redo) + lines(fresh.priced(self.pricing))
            if self.sink is not None and body:
                write(self.sink, body)  # raises: the cursor stays
                stored = True
            if since is None and (self.sink is not None or kept):
                self._advance(moved)  # local mode: only once tariffs.json holds them
        complete = tomorrow_known(book, now, self.unpriced)
        return TariffRun(
            self.client.calls - calls,
            fresh.count(),
            stored,
            complete,
            tuple(self.unpriced.values()),
            redo.count(),
        )

    def cover(self, first: date, last: date, now: datetime) -> tuple[TariffBook, int]:
        """Prices and standing charges of the UK days ``first``..``last`` (``octomon costs``):
        only what ``tariffs.json`` lacks is fetched (up to the published horizon), merged in
        and kept there. Returns the book and the API requests made; raises the client's
        errors (what was had before is still in the file)."""
        calls = self.client.calls
        today = uk_day(now)
        cached, book, points, account_day = self._known(today)
        start = uk_midnight(first)
        end = min(uk_midnight(last + timedelta(days=1)), horizon(now))
        fresh = Published(list(points))
        for series in dict.fromkeys(p.series for p in points):
            in_force = [p for p in points if p.series == series]
            had, had_days = book.prices.get(series, {}), book.charges.get(series, {})
            lacking = [
                t
                for t in half_hours(start, end)
                if t not in had and any(p.agreement_at(t) for p in in_force)
            ]
            no_charge = [
                d
                for d, at in midnights(start, end)
                if d not in had_days and any(p.agreement_at(at) for p in in_force)
            ]
            if not lacking and not no_charge:
                continue
            lo = min([*lacking, *(uk_midnight(d) for d in no_charge)])
            hi = max(
                [t + HALF_HOUR for t in lacking] + [uk_midnight(d) + HALF_HOUR for d in no_charge]
            )
            got = self._fetch(
                series, points, lo, hi, charges_from={series: min(no_charge, default=date.max)}
            )
            if got is not None:
                fresh.merge(got)
        book.merge(fresh)
        was = cached.unpriced if cached is not None else {}
        if (
            fresh.count()
            or account_day != (cached.account_day if cached else None)
            or self.unpriced != was
        ):
            keep = min(first, today - timedelta(days=KEEP_DAYS))
            book = book.since(uk_midnight(keep))
            fetched_at = cached.fetched_at if cached is not None else now
            self.cache.save(Cached(book, fetched_at, account_day, dict(self.unpriced)))
        return book.priced(self.pricing), self.client.calls - calls

    def _fetch(
        self,
        series: Series,
        points: list[MeterPoint],
        start: datetime,
        end: datetime,
        *,
        charges_from: dict[Series, date],
    ) -> Published | None:
        """One meter point's rates, or None when its rates cannot be had: a 404 or 400 from
        the products API or a layout octomon does not price. That is kept in ``unpriced``
        (said once, by the caller) and the other meter points go on; any other error (the
        API away, the budget) propagates."""
        try:
            got = fetch(
                self.client,
                points,
                start,
                end,
                series={series},
                charges_from=charges_from,
            )
        except (NotFound, ApiError) as exc:
            self.unpriced[series] = exc.message
            return None
        self.unpriced.pop(series, None)
        return got

    def _keep(self, cached: Cached) -> bool:
        """Write tariffs.json; a full disk is logged (once) and does not stop the storing:
        the commands then fetch for themselves."""
        try:
            self.cache.save(cached)
        except OSError as exc:
            self._keeping.fail(
                "cannot write %s (%s): prices go to InfluxDB only", self.cache.path, exc.strerror
            )
            return False
        self._keeping.ok()
        return True

    def _priced_as(self) -> str | None:
        """The settings the stored points were priced with (None: not known yet)."""
        if self.state is None:
            return self._memory_priced_as
        return self.state.load().tariff_priced_as

    def _advance(self, moved: dict[Series, Cursor]) -> None:
        """Move the cursors; the points behind them are now priced with the settings of now."""
        signature = self.pricing.signature()
        if self.state is None:
            self._memory.update(moved)
            self._memory_priced_as = signature
            return

        def update(state: State) -> None:
            state.tariff_cursors.update({"/".join(s): c for s, c in moved.items()})
            state.tariff_priced_as = signature

        self.state.update(update)
