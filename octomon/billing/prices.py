"""The prices octomon keeps in ``CACHE_DIR/tariffs.json`` (SPEC §9, :mod:`octomon.jsonfile`):
the meter points, their agreements, the rates of the last days and of tomorrow as published
(:class:`~octomon.octopus.published.Published`: both payment methods, day and night apart),
and which meter points' rates could not be had — so ``tariff``, ``costs`` and the panel
answer without a call. Whoever loads it prices it with the settings of now
(:func:`pricing`), so a corrected OCTOPUS_PAYMENT_METHOD or ECONOMY7_NIGHT re-prices what
was kept. Read strictly: a value of the wrong type is damage, set aside and fetched again;
a file of an older octomon is fetched again."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octomon import jsonfile
from octomon.config_rules import night_window
from octomon.jsonfile import JsonFile, Kind
from octomon.octopus.pricebook import MeterPoint, Series, TariffBook
from octomon.octopus.published import Pricing, Published
from octomon.readings import format_time

if TYPE_CHECKING:
    from octomon.config import Settings

CACHE_FILE = "tariffs.json"
LOCK_FILE = "tariffs.lock"


def pricing(settings: Settings) -> Pricing:
    """OCTOPUS_PAYMENT_METHOD and ECONOMY7_NIGHT, as the kept rates are priced with."""
    return Pricing(settings.octopus_payment_method, night_window(settings.economy7_night))


def _key(series: Series) -> str:
    return "/".join(series)


def _series(key: str) -> Series:
    fuel, direction = key.split("/")
    return fuel, direction


@dataclass(frozen=True)
class Cached:
    published: Published
    fetched_at: datetime
    account_day: date  # the UK day the account (meter points, agreements) was read
    unpriced: dict[Series, str] = field(default_factory=dict)  # why rates were not had
    pricing: Pricing | None = None  # how ``book`` is priced (not kept in the file)

    @property
    def points(self) -> list[MeterPoint]:
        return self.published.points

    @cached_property
    def book(self) -> TariffBook:
        """The kept rates priced with the settings the file was loaded with."""
        if self.pricing is None:
            raise ValueError("tariffs.json loaded without the settings to price it")
        return self.published.priced(self.pricing)


class TariffCache:
    """``CACHE_DIR/tariffs.json`` (:mod:`octomon.jsonfile`: a damaged file is set aside and
    the prices are fetched again). ``pricing``: the settings its ``book`` is priced with
    (None: only the meter points are wanted)."""

    def __init__(self, cache_dir: Path, pricing: Pricing | None = None) -> None:
        self.file = JsonFile(Path(cache_dir), KIND, LOCK_FILE)
        self.path = self.file.path
        self.pricing = pricing

    def load(self) -> Cached | None:
        """What was fetched, or None (none yet, or a damaged file: then it is re-fetched)."""
        cached = self.file.load()
        if cached is None:
            return None
        return Cached(
            cached.published, cached.fetched_at, cached.account_day, cached.unpriced, self.pricing
        )

    def save(self, cached: Cached) -> None:
        """Written atomically (0600), unless the file already holds it; OSError if not."""
        with self.file.locked():
            self.file.save(cached)


def _encode(cached: Cached | None) -> dict[str, Any]:
    assert cached is not None
    obj = {
        "fetched_at": format_time(cached.fetched_at),
        "account_day": cached.account_day.isoformat(),
        "book": cached.published.to_obj(),
    }
    if cached.unpriced:
        obj["unpriced"] = {_key(s): why for s, why in sorted(cached.unpriced.items())}
    return obj


def _decode(obj: dict[str, Any]) -> Cached | None:
    """Strict: every value of the expected type (a price ``"n/a"`` is damage, not a crash
    in ``tariff`` or ``run`` later)."""
    unpriced = jsonfile.mapping(obj.get("unpriced", {}), "unpriced")
    return Cached(
        Published.from_obj(jsonfile.mapping(obj["book"], "book")),
        jsonfile.instant(obj["fetched_at"]),
        jsonfile.day(obj["account_day"]),
        {_series(k): jsonfile.text(v, "unpriced") for k, v in unpriced.items()},
    )


KIND: Kind[Cached | None] = Kind(
    name=CACHE_FILE,
    version=2,  # 2 (December 2026): the rows as published, priced when read
    decode=_decode,
    encode=_encode,
    empty=lambda: None,
    held=jsonfile.days_held("prices", re.compile(rb'\["(\d{4}-\d{2}-\d{2})T')),
    then="the prices are fetched again",
    older="the prices are fetched again, as published",  # version 1 and unversioned files
)
