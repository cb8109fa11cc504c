"""``CACHE_DIR/state.json``: the monitor's cursor, the newest reading it stored and its last
cycle (for the clock rules), the device, the refresh token, the API call ledger and any
rate-limit backoff (SPEC §4.1, §4.3).

Several processes share the file (``run``, ``backfill``, ``test-octopus``), so every
change is a read-modify-write under a cross-process ``fcntl`` lock on
``CACHE_DIR/state.lock``: the ledger is merged, never overwritten by a stale copy. Each
new value is appended to ``state.journal`` and folded into ``state.json`` every couple of hours
(:mod:`octomon.journaled`: an SD card is not worn by replacing the file every few minutes);
both are ``0600`` (they hold the refresh token).

Every field is typed, and parsed leniently: a bad value is reset to its default (and
logged), the rest is kept. A file that cannot be parsed at all (or of an unknown version) is
set aside by :mod:`octomon.jsonfile` as ``state.json.corrupt-<time>`` with anything that
could be a secret removed, so the copy can be kept or shared safely (SPEC §5).

Keys this octomon does not know (a newer one's) are kept as they were.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from octomon import jsonfile
from octomon import state_fields as fields
from octomon.journaled import JournaledFile
from octomon.jsonfile import DAMAGE, Kind

log = logging.getLogger(__name__)


STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
LEDGER_SPAN = timedelta(hours=1)
VERSION = 1

# Written only when set (most files never hold them).
_OPTIONAL_INSTANTS = ("gas_cursor", "gas_newest", "gas_absent_at", "first_window_start")
_OPTIONAL_TEXTS = (
    "gas_device_id",
    "gas_mprn",
    "gas_serial",
    "gas_units",
    "gas_others",
    "gas_absent",
    "tariff_priced_as",
)
_TIMES = (
    "cursor",
    "refresh_expires_at",
    "backoff_until",
    "rate_limited_since",
    "newest_stored",
    "last_cycle_at",
    "hold_since",
    *_OPTIONAL_INSTANTS,
)
_TEXTS = ("device_id", "refresh_token", "hold_owner", *_OPTIONAL_TEXTS)
_KNOWN = frozenset(
    (
        *_TIMES,
        *_TEXTS,
        "version",
        "calls",
        "backoff_seconds",
        "hold_calls",
        "tariff_cursor",
        "settled",
        "gas_today",
        "tally_pending",
    )
)


def format_instant(dt: datetime) -> str:
    """UTC ISO 8601 with ``Z``, microseconds kept when present (the ledger needs them)."""
    text = dt.astimezone(timezone.utc).replace(tzinfo=None).isoformat()
    return text + "Z"


class TariffCursor(NamedTuple):
    """Per fuel/direction (``billing.tariffs``): what InfluxDB holds of the prices."""

    prices: datetime  # half-hours before this are stored
    charges: date  # standing charges of UK days up to this one are stored


@dataclass
class SettledCursors:
    """Per meter (``daemon.jobs``): ``fetched`` (the API gave up to here) and ``written``
    (InfluxDB took), and the UK days already judged (ISO dates)."""

    fetched: dict[str, datetime] = field(default_factory=dict)
    written: dict[str, datetime] = field(default_factory=dict)
    alerted: list[str] = field(default_factory=list)


@dataclass
class GasDay:
    """Today's gas (``daemon.gas``): the UK day, per half-hour (readAt) kWh, m³ and GBP,
    and the newest half-hour stored."""

    day: str = ""
    half_hours: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    last_reading_at: datetime | None = None


@dataclass
class State:
    cursor: datetime | None = None  # the monitor's settled point (SPEC §4.1)
    device_id: str | None = None
    refresh_token: str | None = None
    refresh_expires_at: datetime | None = None
    calls: list[datetime] = field(default_factory=list)  # the API call ledger
    backoff_until: datetime | None = None  # rate-limit backoff end
    backoff_seconds: float = 0  # current backoff step (300 .. 1800)
    rate_limited_since: datetime | None = None  # start of the current rate-limited episode
    # Gas (SPEC §11): its own cursor, its newest stored half-hour, the meter found.
    gas_cursor: datetime | None = None
    gas_newest: datetime | None = None
    gas_device_id: str | None = None
    gas_mprn: str | None = None
    gas_serial: str | None = None
    gas_units: str | None = None  # its consumptionUnits (settled gas is in these units)
    # The point's other meters (a replaced one) and their units: "SERIAL=unit SERIAL=unit".
    gas_others: str | None = None
    # "No gas" as the account said it (octomon.octopus.gas: none, unsupported), and when.
    gas_absent: str | None = None
    gas_absent_at: datetime | None = None
    gas_today: GasDay | None = None  # today's gas totals, so a restart does not zero them
    # Where the first window starts while there is no cursor yet (Cursor.start_at).
    first_window_start: datetime | None = None
    newest_stored: datetime | None = None  # read_at of the newest reading actually stored
    last_cycle_at: datetime | None = None  # the monitor's last poll cycle (clock rules)
    # The calls a `run` may make before it next writes this file (octopus.budget): other
    # processes count them as made, so the budget holds across processes.
    hold_owner: str | None = None
    hold_calls: int = 0
    hold_since: datetime | None = None
    tariff_cursors: dict[str, TariffCursor] = field(default_factory=dict)  # "fuel/direction"
    # The settings the energy_tariff points behind the cursors were priced with
    # (octomon.octopus.published.Pricing.signature): another one re-prices them.
    tariff_priced_as: str | None = None
    settled: SettledCursors = field(default_factory=SettledCursors)
    # The tally's part not yet in tally.json (store.tally): per fuel, runs of 10-s slots
    # [first slot's Unix time, µkWh, µkWh, ...], written with the cursor that follows them.
    tally_pending: dict[str, list[list[int]]] = field(default_factory=dict)
    unknown: dict[str, Any] = field(default_factory=dict)  # a newer octomon's keys, kept

    def prune(self) -> None:
        """Drop ledger entries more than an hour older than the newest one; keep order."""
        self.calls.sort()
        if self.calls:
            horizon = self.calls[-1] - LEDGER_SPAN
            self.calls = [c for c in self.calls if c > horizon]

    def to_obj(self) -> dict[str, Any]:
        def t(dt: datetime | None) -> str | None:
            return format_instant(dt) if dt is not None else None

        obj: dict[str, Any] = dict(self.unknown)
        obj.update(
            cursor=t(self.cursor),
            device_id=self.device_id,
            refresh_token=self.refresh_token,
            refresh_expires_at=t(self.refresh_expires_at),
            calls=[format_instant(c) for c in self.calls],
            backoff_until=t(self.backoff_until),
            backoff_seconds=self.backoff_seconds,
            rate_limited_since=t(self.rate_limited_since),
            newest_stored=t(self.newest_stored),
            last_cycle_at=t(self.last_cycle_at),
            hold_owner=self.hold_owner,
            hold_calls=self.hold_calls,
            hold_since=t(self.hold_since),
        )
        obj.update({k: t(getattr(self, k)) for k in _OPTIONAL_INSTANTS if getattr(self, k)})
        obj.update({k: getattr(self, k) for k in _OPTIONAL_TEXTS if getattr(self, k)})
        if self.tariff_cursors:
            obj["tariff_cursor"] = {
                key: {"prices": format_instant(c.prices), "charges": c.charges.isoformat()}
                for key, c in sorted(self.tariff_cursors.items())
            }
        s = self.settled
        if s.fetched or s.written or s.alerted:
            obj["settled"] = {
                "fetched": {k: format_instant(v) for k, v in sorted(s.fetched.items())},
                "written": {k: format_instant(v) for k, v in sorted(s.written.items())},
                "alerted": list(s.alerted),
            }
        if self.gas_today is not None:
            g = self.gas_today
            obj["gas_today"] = {
                "day": g.day,
                # 6 decimals (a thousandth of a Wh, of a litre, of a penny): state.json
                # is rewritten every cycle, its size is an SD card's wear (SPEC §4.9)
                "half_hours": {k: [round(x, 6) for x in v] for k, v in g.half_hours.items()},
                "last": t(g.last_reading_at),
            }
        if self.tally_pending:
            obj["tally_pending"] = self.tally_pending
        return obj

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> State:
        """Lenient per field: a bad value is reset to its default (and logged)."""
        state = cls(unknown={k: v for k, v in obj.items() if k not in _KNOWN})
        for name in _TIMES:
            setattr(state, name, fields.parsed(obj, name, jsonfile.instant, None))
        for name in _TEXTS:
            setattr(state, name, fields.parsed(obj, name, fields.nonempty, None))
        calls = (
            fields.parsed({"call": c}, "call", jsonfile.instant, None)
            for c in fields.listed(obj, "calls")
        )
        state.calls = sorted(c for c in calls if c is not None)
        state.hold_calls = fields.parsed(obj, "hold_calls", fields.count, 0)
        state.backoff_seconds = fields.parsed(obj, "backoff_seconds", fields.seconds, 0.0)
        cursors = fields.table(obj, "tariff_cursor")
        for key in cursors:
            cursor = fields.parsed(cursors, key, _tariff_cursor(key), None)
            if cursor is not None:
                state.tariff_cursors[key] = cursor
        settled = fields.table(obj, "settled")
        for name in ("fetched", "written"):
            table = fields.table(settled, name)
            times = {str(k): fields.parsed(table, k, jsonfile.instant, None) for k in table}
            setattr(state.settled, name, {k: v for k, v in times.items() if v is not None})
        state.settled.alerted = [str(d) for d in fields.listed(settled, "alerted")]
        state.gas_today = fields.parsed(obj, "gas_today", _gas_day, None)
        state.tally_pending = fields.parsed(obj, "tally_pending", runs_of, {})
        return state


def _tariff_cursor(key: str) -> Callable[[Any], TariffCursor]:
    def parse(value: Any) -> TariffCursor:
        if len(key.split("/")) != 2:
            raise ValueError(key)
        table = jsonfile.mapping(value)
        return TariffCursor(jsonfile.instant(table["prices"]), jsonfile.day(table["charges"]))

    return parse


def _gas_day(value: Any) -> GasDay:
    obj = jsonfile.mapping(value)
    half_hours: dict[str, tuple[float, float, float]] = {}
    for key, v in jsonfile.mapping(obj.get("half_hours") or {}).items():
        kwh, m3, gbp = jsonfile.array(v)
        half_hours[key] = (jsonfile.number(kwh), jsonfile.number(m3), jsonfile.number(gbp))
    last = obj.get("last")
    return GasDay(
        jsonfile.text(obj.get("day") or ""),
        half_hours,
        jsonfile.instant(last) if last is not None else None,
    )


def runs_of(value: Any) -> dict[str, list[list[int]]]:
    """``tally_pending``: per fuel, runs of ints (see :class:`State`)."""
    out: dict[str, list[list[int]]] = {}
    for fuel, runs in jsonfile.mapping(value).items():
        out[fuel] = [
            [jsonfile.integer(n) for n in jsonfile.array(run)] for run in jsonfile.array(runs)
        ]
        if any(len(run) < 2 for run in out[fuel]):
            raise ValueError("an empty run")
    return out


def _state_held(raw: bytes) -> str:
    cursor = _CURSOR.search(raw)
    at = f" at {cursor.group(1).decode()}" if cursor else ""
    return f"the cursor{at}, the device and the call ledger"


_CURSOR = re.compile(rb'"cursor"\s*:\s*"([0-9T:.Z+-]{10,32})"')

KIND: Kind[State] = Kind(
    name=STATE_FILE,
    version=VERSION,
    decode=State.from_obj,
    encode=State.to_obj,
    empty=State,
    held=_state_held,
    then="starting with a fresh state (the cursor, device and call ledger are reset)",
    unversioned=True,  # octomon wrote state.json without a version before December 2026
    sort_keys=True,
    scrub=jsonfile.without_secrets,
)


class StateStore:
    """``state.json`` under ``cache_dir``; see the module docstring for the rules."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self.file = JournaledFile(self.cache_dir, KIND, LOCK_FILE)
        self.path = self.file.path
        self.journal = self.file.journal
        self.lock_path = self.file.lock_path
        # Applied to every state this process writes, after the mutation: a part of another
        # file that must reach the disk with the cursor (the tally's pending readings).
        self.riders: list[Callable[[State], None]] = []

    @property
    def recovered_corrupt(self) -> Path | None:
        """The set-aside copy of a damaged state.json, once this store met one."""
        return self.file.set_aside

    @recovered_corrupt.setter
    def recovered_corrupt(self, value: Path | None) -> None:
        self.file.set_aside = value

    def load(self) -> State:
        """The state on disk; a fresh one when missing; a damaged file is set aside."""
        return self.file.load()

    def tally_pending(self) -> dict[str, list[list[int]]]:
        """``tally_pending`` alone, for the tally's readers: quietly empty when missing or
        unreadable (a damaged state.json is set aside by ``run``, which alerts on it)."""
        raw = self.file.read_raw()
        if raw is None:
            return {}
        try:
            obj = json.loads(raw)
            return runs_of(obj["tally_pending"]) if "tally_pending" in obj else {}
        except DAMAGE:
            return {}

    def identity(self) -> tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]:
        """Changes whenever any process writes the state (one ``stat`` per file, no read)."""
        return self.file.identity()

    def update(self, mutate: Callable[[State], None]) -> State:
        """Under the lock: re-read, apply ``mutate``, write (appended); the new state.

        If ``mutate`` raises, nothing is written and the exception propagates. A failed
        write (disk full) raises ``OSError``. Unchanged bytes are not written again.
        """

        def apply(state: State) -> None:
            mutate(state)
            for rider in self.riders:
                rider(state)
            state.prune()

        if not self.cache_dir.is_dir():
            from octomon import fsutil

            fsutil.ensure_private_dir(self.cache_dir)
        return self.file.update(apply)[0]


without_secrets = jsonfile.without_secrets
