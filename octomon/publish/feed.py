"""The one hook between the daemon and the outputs (SPEC §13): what was stored, as a view.

The daemon calls :meth:`Feed.stored` after every durable store (electricity and gas, the
same readings the tally counts) and :meth:`Feed.fill` whenever it refreshes its status
(after each cycle, sync step, at start and stop). ``fill`` builds one immutable
:class:`View` and hands it to each output; nothing here blocks or raises into the daemon:
an output that fails is logged once (:class:`~octomon.latch.Latch`) and the cycle goes on.

Today's figures come from the tally (SPEC §10): read once at start for today's UK day, then
kept in memory with the tally's own idempotent merge, so a reading stored twice still counts
once and no file is read per cycle. The price is the tariffs cache's (SPEC §9), re-read
only when the file changes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple, Protocol

from octomon.daemon.status import Status, healthy
from octomon.latch import Latch
from octomon.readings import AnyReading, GasReading, Reading, calorific, volume_m3
from octomon.store.tally import ELECTRICITY, GAS, Tally, TallyData, merge
from octomon.uktime import uk_day, uk_midnight

if TYPE_CHECKING:
    from octomon.octopus.pricebook import TariffBook
    from octomon.octopus.published import Pricing

log = logging.getLogger(__name__)


def watts(kw: float) -> float:
    """kW as W, as the API gave it (through Decimal: 0.3 kW is 300.0 W, not 300.00000000000006)."""
    return float(Decimal(str(kw)) * 1000)


class View(NamedTuple):
    """Everything an output shows, at one instant; shared read-only between threads."""

    at: datetime | None = None  # when the daemon last refreshed it
    electricity: Reading | None = None  # the newest stored reading
    gas: GasReading | None = None
    today_kwh: Mapping[str, float] = MappingProxyType({})  # by fuel, UK day, from the tally
    gas_today_m3: float | None = None
    cost_today_gbp: float | None = None  # electricity import, inc VAT and standing charge
    unit_rate: float | None = None  # GBP/kWh inc VAT, the half-hour now
    stored: Mapping[str, int] = MappingProxyType({})  # readings stored since start, by fuel
    cycles: Mapping[str, int] = MappingProxyType({})  # poll cycles since start, by outcome
    backlog: int = 0
    calls_last_hour: int = 0
    call_budget: int = 0
    poll_interval: int = 60
    last_good_cycle_at: datetime | None = None
    seq: int = 0  # grows with every store: an output publishes state when it moved

    def ready(self, now: datetime) -> tuple[bool, str]:
        """``/ready``: the rule of ``status --check`` (a good cycle, young enough)."""
        if self.last_good_cycle_at is None:
            return False, "no good cycle yet"
        if not healthy(self.last_good_cycle_at, self.poll_interval, now):
            age = int((now - self.last_good_cycle_at).total_seconds())
            return False, f"the last good cycle was {age} s ago"
        return True, "ok"


class Output(Protocol):
    name: str

    def update(self, view: View) -> None: ...
    def state(self) -> str: ...
    def close(self) -> None: ...


class Counted(Protocol):
    """The daemon's hook after a durable store (the tally's recorder)."""

    def stored(self, readings: Sequence[AnyReading]) -> None: ...


class _Recorder:
    """The tally's hook after a durable store, telling the feed too (the tally first)."""

    def __init__(self, inner: Counted, feed: Feed) -> None:
        self._inner = inner
        self._feed = feed

    def stored(self, readings: Sequence[AnyReading]) -> None:
        batch = list(readings)
        self._inner.stored(batch)
        self._feed.stored(batch)


class Feed:
    """The publisher interface the daemon calls; the outputs implement :class:`Output`."""

    def __init__(
        self,
        outputs: Sequence[Output],
        cache_dir: Path,
        calorific_value: float = 39.5,
        pricing: Pricing | None = None,
    ) -> None:
        self.outputs = list(outputs)
        self.cache_dir = Path(cache_dir)
        self.pricing = pricing  # the settings the kept rates are priced with (None: no prices)
        self.cv = calorific(calorific_value)
        self.view = View()
        self._latches = {o.name: Latch(log) for o in self.outputs}
        self._newest: dict[str, AnyReading] = {}
        self._stored = {ELECTRICITY: 0, GAS: 0}
        self._cycles: dict[str, int] = {}
        self._seq = 0
        self._last_cycle: datetime | None = None
        self._day: object = None
        self._since = 0  # today's UK midnight, Unix seconds
        self._today: dict[str, dict[int, tuple[int, int]]] = {}
        self._book: tuple[float, TariffBook | None] = (-1.0, None)

    def recorder(self, inner: Counted) -> Counted:
        """Wrap the monitor's tally recorder: every durable store reaches the feed."""
        return _Recorder(inner, self)

    def stored(self, readings: Sequence[AnyReading]) -> None:
        if not readings:
            return
        for r in readings:
            fuel = GAS if isinstance(r, GasReading) else ELECTRICITY
            self._stored[fuel] += 1
            old = self._newest.get(fuel)
            if old is None or r.read_at >= old.read_at:
                self._newest[fuel] = r
        if self._today:
            merge(self._today, readings)
        self._seq += 1

    def fill(self, status: Status, now: datetime) -> None:
        """The daemon refreshed its status: a new view for every output; their state back."""
        if status.last_cycle_at is not None and status.last_cycle_at != self._last_cycle:
            self._last_cycle = status.last_cycle_at
            outcome = status.last_outcome or "ok"
            self._cycles[outcome] = self._cycles.get(outcome, 0) + 1
        self.view = self._view(status, now)
        states = {}
        for out in self.outputs:
            latch = self._latches[out.name]
            try:
                out.update(self.view)
                latch.ok("%s output works again", out.name)
            except Exception as exc:  # an output must never stop the daemon (SPEC §13)
                latch.fail("%s output failed (%s); readings are still stored", out.name, exc)
                log.debug("details", exc_info=True)
            states[out.name] = out.state()
        status.outputs = states

    def close(self) -> None:
        for out in self.outputs:
            try:
                out.close()
            except Exception:  # closing must never turn a clean stop into a crash
                log.debug("error while closing the %s output", out.name, exc_info=True)

    # --- the view ----------------------------------------------------------------------------

    def _view(self, status: Status, now: datetime) -> View:
        day = uk_day(now)
        if day != self._day:
            self._day = day
            self._load_today(uk_midnight(day))
        elec, gas = self._newest.get(ELECTRICITY), self._newest.get(GAS)
        today = {
            fuel: sum(m for k, (_, m) in t.items() if k >= self._since) / 1e6
            for fuel, t in self._today.items()
        }
        gas_m3 = None
        if GAS in today:
            gas_m3 = float(volume_m3(Decimal(str(today[GAS])), self.cv))
        cost, rate = self._prices(now)
        return View(
            at=now,
            electricity=elec if isinstance(elec, Reading) else None,
            gas=gas if isinstance(gas, GasReading) else None,
            today_kwh=today,
            gas_today_m3=gas_m3,
            cost_today_gbp=cost,
            unit_rate=rate if rate is not None else status.unit_rate,
            stored=dict(self._stored),
            cycles=dict(self._cycles),
            backlog=status.cache_backlog,
            calls_last_hour=status.calls_last_hour,
            call_budget=status.call_budget,
            poll_interval=status.poll_interval,
            last_good_cycle_at=status.last_good_cycle_at,
            seq=self._seq,
        )

    def _load_today(self, midnight: datetime) -> None:
        """Today's half-hours from the tally file (once a day); the merge keeps them after."""
        since = self._since = int(midnight.timestamp())
        data = Tally(self.cache_dir).load()
        self._today = {ELECTRICITY: {}, GAS: {}}
        for fuel in (ELECTRICITY, GAS):
            for hh in data.half_hours(fuel, since=midnight):
                self._today[fuel][int(hh.start.timestamp())] = (hh.bits, hh.micro_kwh)
        self._today = {
            f: {k: v for k, v in t.items() if k >= since} for f, t in self._today.items()
        }
        if not self._today[GAS]:
            del self._today[GAS]  # no gas today (or none at all): no gas figures

    def _prices(self, now: datetime) -> tuple[float | None, float | None]:
        """(today's electricity cost, the unit rate now) from the tariffs cache, if known."""
        from octomon.billing.costs import IMPORT, day_cost
        from octomon.billing.settled import SettledData
        from octomon.billing.tariffs import CACHE_FILE, TariffCache
        from octomon.store.tally import half_hour_of

        path = self.cache_dir / CACHE_FILE
        if self.pricing is None:
            return None, None
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None, None
        if mtime != self._book[0]:
            cached = TariffCache(self.cache_dir, self.pricing).load()
            self._book = (mtime, cached.book if cached is not None else None)
        book = self._book[1]
        if book is None:
            return None, None
        price = book.price_at(half_hour_of(now))
        rate = float(price.unit_rate) if price is not None else None
        if ELECTRICITY not in self._today or not self._today[ELECTRICITY]:
            return None, rate
        today = {k: v for k, v in self._today[ELECTRICITY].items() if k >= self._since}
        tally = TallyData({ELECTRICITY: today})
        total = day_cost(uk_day(now), IMPORT, book, SettledData(), tally).total
        return (float(total) if total is not None else None), rate
