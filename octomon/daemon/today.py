"""Today's electricity and gas (UK day) for the panel and ``status.json`` (SPEC §4.8, §6).

Counted from the Home Mini's tally (SPEC §10), not from what this process fetched: the tally
holds what any process stored -- an earlier run, a ``backfill`` -- so a daemon started at
15:00 shows the morning too. Read from the tally's files at start, when the UK day changes
and every :data:`RELOAD` (to see another process's stores); in between, what this daemon
stores is merged in memory with the tally's own idempotent count.

The figures are those of ``octomon costs`` for today (one rounding for one figure): each
half-hour's kWh rounded to 0.01 kWh, half to even, then summed; the pounds are the day so
far with its standing charge, inc. VAT, when the tariffs cache prices every half-hour stored
(``costs``' "total" column), else None.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from octomon.readings import AnyReading
from octomon.store.halfhours import ELECTRICITY, GAS, Fuels, merge
from octomon.uktime import uk_day, uk_midnight

if TYPE_CHECKING:
    from octomon.daemon.status import Status
    from octomon.daemon.stream import Counter
    from octomon.octopus.pricebook import TariffBook
    from octomon.octopus.published import Pricing

log = logging.getLogger(__name__)

RELOAD = timedelta(minutes=10)


class TodayFromTally:
    """A status filler (:class:`~octomon.daemon.status.Board`) and a store hook."""

    def __init__(
        self, cache_dir: Path, calorific_value: Decimal, pricing: Pricing | None = None
    ) -> None:
        """``pricing``: OCTOPUS_PAYMENT_METHOD and ECONOMY7_NIGHT, to price the kept rates
        (None: today's kWh without pounds)."""
        self.cache_dir = Path(cache_dir)
        self.cv = calorific_value
        self.pricing = pricing
        self._day: date | None = None
        self._loaded_at: datetime | None = None
        self._fuels: Fuels = {}
        self._book: tuple[float, TariffBook | None] = (-1.0, None)

    def recorder(self, inner: Counter) -> Counter:
        """Wrap the monitor's tally recorder: what the daemon stores counts at once."""
        return _Recorder(inner, self)

    def stored(self, readings: Sequence[AnyReading]) -> None:
        if self._day is not None:
            merge(self._fuels, readings)

    def fill(self, status: Status, now: datetime) -> None:
        """Today's kWh (and £) of both fuels into the status; gas only when stored today."""
        from octomon.billing.costs import GAS as GAS_SERIES
        from octomon.billing.costs import IMPORT, day_cost
        from octomon.billing.settled import SettledData
        from octomon.octopus.pricebook import TariffBook
        from octomon.readings import volume_m3
        from octomon.store.halfhours import TallyData

        self._load(now)
        day = uk_day(now)
        tally = TallyData(self._fuels)
        book = self._prices()
        prices = book or TariffBook()
        electricity = day_cost(day, IMPORT, prices, SettledData(), tally)
        if electricity.kwh is not None:
            status.electricity_today_kwh = float(electricity.kwh)
            status.electricity_today_gbp = _gbp(electricity.total, book)
        else:
            status.electricity_today_kwh = status.electricity_today_gbp = None
        gas = day_cost(day, GAS_SERIES, prices, SettledData(), tally)
        if gas.kwh is not None:  # else what the gas job counted (None: no gas today)
            status.gas_today_kwh = float(gas.kwh)
            status.gas_today_m3 = float(volume_m3(gas.kwh, self.cv))
            status.gas_today_gbp = _gbp(gas.total, book)
        else:  # the gas job's own count (the tally unreadable): its kWh, not its API pence
            status.gas_today_gbp = None

    def _load(self, now: datetime) -> None:
        from octomon.store.tally import Tally

        day = uk_day(now)
        fresh = self._loaded_at is not None and abs(now - self._loaded_at) < RELOAD
        if day == self._day and fresh:
            return
        since = int(uk_midnight(day).timestamp())
        try:
            data = Tally(self.cache_dir).load()
        except OSError as exc:  # unreadable: keep what is counted in memory, try again later
            log.debug("today: could not read the tally (%s)", exc)
            if day != self._day:
                self._day, self._fuels = day, {}
            self._loaded_at = now
            return
        kept = self._fuels if day == self._day else {}
        fuels: Fuels = {
            fuel: {
                int(hh.start.timestamp()): (hh.bits, hh.micro_kwh)
                for hh in data.half_hours(fuel, since=uk_midnight(day))
            }
            for fuel in (ELECTRICITY, GAS)
        }
        for fuel, table in kept.items():  # what this process counted meanwhile (idempotent)
            for key, (bits, micro) in table.items():
                if key >= since:
                    _or(fuels.setdefault(fuel, {}), key, bits, micro)
        self._day, self._fuels, self._loaded_at = day, fuels, now

    def _prices(self) -> TariffBook | None:
        """The tariffs cache's book, re-read only when the file changed."""
        from octomon.billing.prices import CACHE_FILE, TariffCache

        try:
            mtime = (self.cache_dir / CACHE_FILE).stat().st_mtime
        except OSError:
            return None
        if self.pricing is None:
            return None
        if mtime != self._book[0]:
            try:
                cached = TariffCache(self.cache_dir, self.pricing).load()
            except OSError:
                return self._book[1]
            self._book = (mtime, cached.book if cached is not None else None)
        return self._book[1]


def _or(table: dict[int, tuple[int, int]], key: int, bits: int, micro: int) -> None:
    """Keep the half-hour that counted more readings (both are counts of the same stores)."""
    old = table.get(key)
    if old is None or bits.bit_count() > old[0].bit_count():
        table[key] = (bits, micro)


def _gbp(total: Decimal | None, book: TariffBook | None) -> float | None:
    return float(total) if total is not None and book is not None else None


class _Recorder:
    def __init__(self, inner: Counter, today: TodayFromTally) -> None:
        self._inner = inner
        self._today = today

    def stored(self, readings: Sequence[AnyReading]) -> None:
        batch = list(readings)
        self._inner.stored(batch)
        self._today.stored(batch)
