"""``octomon costs``, the use case: fetch (within the shared ledger) only what CACHE_DIR lacks
for the range, then price every UK day with :mod:`octomon.billing.costs`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from octomon.billing.costs import EXPORT, GAS, IMPORT, MISSING, CostReport, costs
from octomon.octopus.pricebook import TariffBook
from octomon.units import GAS as GAS_FUEL

if TYPE_CHECKING:
    from octomon.billing.settled import SettledData, Units
    from octomon.config import Settings
    from octomon.octopus.consumption import Meter
    from octomon.octopus.gas import GasMeter
    from octomon.wiring import Wiring


@dataclass
class Bill:
    """The report of ``octomon costs``: the rows, the API calls made, what could not be fetched."""

    since: date
    until: date
    report: CostReport
    api_calls: int = 0
    errors: list[str] = field(default_factory=list)  # fetches that failed (answered from files)
    unpriced: list[str] = field(default_factory=list)  # meter points whose rates can't be had
    unconverted: list[str] = field(default_factory=list)  # gas meters in units not known

    def empty_days(self) -> list[date]:
        """Asked days with nothing known for any fuel (``costs`` exits 1 for these)."""
        known = {d.day for d in self.report.days if d.source != MISSING}
        return [d for d in dict.fromkeys(x.day for x in self.report.days) if d not in known]


def bill(settings: Settings, first: date, last: date, now: datetime) -> Bill:
    """Fetch (within the shared ledger) only what CACHE_DIR lacks for ``first``..``last``,
    then price every UK day. An Octopus failure is not fatal: what was kept still answers,
    and the failure is reported in ``errors``."""
    from octomon.billing.settled import SettledStore, fill, known_meters
    from octomon.billing.tariffs import TariffCache, Tariffs, pricing
    from octomon.errors import OctopusError
    from octomon.readings import calorific
    from octomon.store.tally import Tally
    from octomon.uktime import days
    from octomon.wiring import Wiring

    cache_dir = Path(settings.cache_dir)
    assert settings.octopus_api_key and settings.octopus_account_number
    wiring = Wiring(settings, clock=lambda: now)
    client = wiring.rest
    errors: list[str] = []
    settled_store = SettledStore(cache_dir)
    try:
        tariffs = Tariffs.from_settings(settings, client, state=None, sink=None)
        try:
            book, _ = tariffs.cover(first, last, now)
            unpriced = dict(tariffs.unpriced)
        except OctopusError as exc:
            errors.append(f"prices: {exc.message}")
            cached = TariffCache(cache_dir, pricing(settings)).load()
            book = cached.book if cached is not None else TariffBook()
            unpriced = dict(cached.unpriced) if cached is not None else {}
        try:
            meters = known_meters(cache_dir, lambda: client, settings.octopus_account_number)
            settled, _ = fill(
                lambda: client,
                meters,
                settled_store,
                first,
                last,
                now,
                calorific(settings.gas_calorific_value),
                command_units(wiring, errors),
            )
        except OctopusError as exc:
            errors.append(f"settled consumption: {exc.message}")
            settled = settled_store.load()
            settled.calorific_value = calorific(settings.gas_calorific_value)
    finally:
        wiring.close()
    wanted = [
        s
        for s in (IMPORT, GAS, EXPORT)
        if any(p.series == s for p in book.points) and s not in unpriced
    ]
    report = costs(days(first, last), wanted or [IMPORT], book, settled, Tally(cache_dir).load())
    return Bill(
        first,
        last,
        report,
        wiring.api_calls,
        errors,
        list(unpriced.values()),
        unconverted(settled),
    )


def command_units(wiring: Wiring, errors: list[str]) -> Units:
    """A meter's unit for ``costs``: electricity kWh; gas as the daemon's discovery kept it
    in ``state.json``, else asked once of the GraphQL account (the ``consumptionUnits`` of the
    smart meter or of another meter of its point, a replaced one; two requests: a token and
    the account). A failure leaves it unknown and is reported."""
    from octomon.billing.settled import units_from_state
    from octomon.errors import OctopusError

    from_state = units_from_state(wiring.state)
    asked: list[GasMeter | None] = []

    def unit(meter: Meter) -> str | None:
        said = from_state(meter)
        if said is not None or meter.fuel != GAS_FUEL or wiring.settings.octopus_gas == "off":
            return said
        if not asked:
            try:
                asked.append(wiring.octopus.gas())
            except OctopusError as exc:
                errors.append(f"gas meter's units: {exc.message}")
                asked.append(None)
        found = asked[0]
        return found.units_of(meter.serial) if found is not None else None

    return unit


def unconverted(settled: SettledData) -> list[str]:
    """One line per gas meter whose settled values octomon cannot turn into kWh."""
    return [
        f"gas meter {m.meter.serial} reports in {m.unit!r}, which octomon does not convert"
        if m.unit is not None
        else f"the units of gas meter {m.meter.serial} are not known (the Octopus API has "
        "not said them)"
        for m in settled.unknown_units()
    ]
