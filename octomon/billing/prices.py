"""The prices octomon keeps in ``CACHE_DIR/tariffs.json`` (SPEC §9, :mod:`octomon.jsonfile`):
the meter points, their agreements, the prices of the last days and of tomorrow, and which
meter points' rates could not be had — so ``tariff``, ``costs`` and the panel answer without
a call. Read strictly: a value of the wrong type is damage, set aside and fetched again."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

from octomon import jsonfile
from octomon.jsonfile import JsonFile, Kind
from octomon.octopus.pricebook import Series, TariffBook
from octomon.readings import format_time

CACHE_FILE = "tariffs.json"
LOCK_FILE = "tariffs.lock"


def _key(series: Series) -> str:
    return "/".join(series)


def _series(key: str) -> Series:
    fuel, direction = key.split("/")
    return fuel, direction


class Cached(NamedTuple):
    book: TariffBook
    fetched_at: datetime
    account_day: date  # the UK day the account (meter points, agreements) was read
    unpriced: dict[Series, str] = {}  # noqa: RUF012 -- never mutated: why rates were not had


class TariffCache:
    """``CACHE_DIR/tariffs.json`` (:mod:`octomon.jsonfile`: a damaged file is set aside and
    the prices are fetched again)."""

    def __init__(self, cache_dir: Path) -> None:
        self.file = JsonFile(Path(cache_dir), KIND, LOCK_FILE)
        self.path = self.file.path

    def load(self) -> Cached | None:
        """What was fetched, or None (none yet, or a damaged file: then it is re-fetched)."""
        return self.file.load()

    def save(self, cached: Cached) -> None:
        """Written atomically (0600), unless the file already holds it; OSError if not."""
        with self.file.locked():
            self.file.save(cached)


def _encode(cached: Cached | None) -> dict[str, Any]:
    assert cached is not None
    obj = {
        "fetched_at": format_time(cached.fetched_at),
        "account_day": cached.account_day.isoformat(),
        "book": cached.book.to_obj(),
    }
    if cached.unpriced:
        obj["unpriced"] = {_key(s): why for s, why in sorted(cached.unpriced.items())}
    return obj


def _decode(obj: dict[str, Any]) -> Cached | None:
    """Strict: every value of the expected type (a price ``"n/a"`` is damage, not a crash
    in ``tariff`` or ``run`` later)."""
    book = jsonfile.mapping(obj["book"], "book")
    for p in jsonfile.array(book["points"], "points"):
        point = jsonfile.mapping(p, "a meter point")
        for name in ("fuel", "direction", "id"):
            jsonfile.text(point[name], name)
        for serial in jsonfile.array(point["serials"], "serials"):
            jsonfile.text(serial, "a serial")
        for agreement in jsonfile.array(point["agreements"], "agreements"):
            code, start, end = jsonfile.array(agreement, "an agreement")
            jsonfile.text(code, "a tariff code")
            jsonfile.instant(start)
            if end is not None:
                jsonfile.instant(end)
    for table, when in (("prices", jsonfile.instant), ("charges", jsonfile.day)):
        for series, rows in jsonfile.mapping(book[table], table).items():
            if len(series.split("/")) != 2:
                raise jsonfile.Damaged(f"{table} of {series!r}")
            for row in jsonfile.array(rows, table):
                at, code, inc, exc = jsonfile.array(row, table)
                when(at)
                jsonfile.text(code, "a tariff code")
                jsonfile.decimal(inc)
                jsonfile.decimal(exc)
    unpriced = jsonfile.mapping(obj.get("unpriced", {}), "unpriced")
    return Cached(
        TariffBook.from_obj(book),
        jsonfile.instant(obj["fetched_at"]),
        jsonfile.day(obj["account_day"]),
        {_series(k): jsonfile.text(v, "unpriced") for k, v in unpriced.items()},
    )


KIND: Kind[Cached | None] = Kind(
    name=CACHE_FILE,
    version=1,
    decode=_decode,
    encode=_encode,
    empty=lambda: None,
    held=jsonfile.days_held("prices", re.compile(rb'\["(\d{4}-\d{2}-\d{2})T')),
    then="the prices are fetched again",
    unversioned=True,  # written without a version before December 2026
)
