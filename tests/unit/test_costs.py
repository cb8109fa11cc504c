"""The cost of a UK day (SPEC §12), from prices, settled consumption and the Home Mini's tally."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from octomon.billing.costs import EXPORT, GAS, IMPORT, LIVE, MISSING, SETTLED, costs, day_cost
from octomon.billing.settled import MeterData, SettledData
from octomon.octopus.consumption import Meter
from octomon.octopus.pricebook import Charge, Price, TariffBook
from octomon.readings import Reading
from octomon.store.tally import TallyData, merge
from octomon.uktime import half_hours

UTC = timezone.utc
DAY = date(2026, 11, 30)
FIXED, AGILE = "E-1R-FIX-C", "E-1R-AGILE-24-10-01-C"


def book(*, switch_at: int = 20, skip: int | None = None) -> TariffBook:
    """A fixed 24.5p until half-hour ``switch_at`` of DAY, then an Agile-like price per slot."""
    b = TariffBook()
    prices = b.prices.setdefault(IMPORT, {})
    for i, hh in enumerate(half_hours(DAY)):
        if i == skip:
            continue
        if i < switch_at:
            prices[hh] = Price(FIXED, Decimal("0.24465"), Decimal("0.233"))
        else:
            rate = Decimal(i - 30) / 100  # negative at first, then up
            prices[hh] = Price(AGILE, rate * Decimal("1.05"), rate)
    b.charges.setdefault(IMPORT, {})[DAY] = Charge(AGILE, Decimal("0.479115"), Decimal("0.4563"))
    return b


def settled_day(kwh: float = 0.25) -> SettledData:
    meter = Meter("electricity", "import", "1900051510123", "21E5151012")
    return SettledData({meter.key: MeterData(meter, {hh: kwh for hh in half_hours(DAY)})})


def test_a_settled_day_is_each_half_hour_times_its_own_rate() -> None:
    got = day_cost(DAY, IMPORT, book(), settled_day(), TallyData())
    expected = sum(
        (
            Decimal("0.25")
            * (Decimal("0.24465") if i < 20 else Decimal(i - 30) / 100 * Decimal("1.05"))
            for i in range(48)
        ),
        Decimal(0),
    )
    assert got.source == SETTLED and got.kwh == Decimal("12.00")
    assert got.energy == expected.quantize(Decimal("0.01"))
    assert got.standing == Decimal("0.48")
    assert got.total == got.energy + Decimal("0.48")
    assert got.tariffs == (FIXED, AGILE) and got.missing == ()


def test_without_settled_data_the_day_is_live_from_the_tally() -> None:
    fuels: dict[str, dict[int, tuple[int, int]]] = {}
    start = half_hours(DAY)[0]
    readings = [
        Reading(start + timedelta(seconds=10 * i), "dev", consumption_delta=0.001)
        for i in range(360)  # the first hour: 2 half-hours of 0.18 kWh
    ]
    merge(fuels, readings + readings)  # stored twice: counted once
    got = day_cost(DAY, IMPORT, book(), SettledData(), TallyData(fuels))
    assert got.source == LIVE
    assert got.kwh == Decimal("0.36")
    assert got.energy == (Decimal("0.36") * Decimal("0.24465")).quantize(Decimal("0.01"))


def test_a_day_with_neither_is_missing_not_zero() -> None:
    got = day_cost(DAY, IMPORT, book(), SettledData(), TallyData())
    assert got.source == MISSING and got.kwh is None and got.energy is None and got.total is None
    assert got.missing == ("consumption",)


def test_a_missing_price_leaves_the_cost_unknown_and_says_so() -> None:
    got = day_cost(DAY, IMPORT, book(skip=7), settled_day(), TallyData())
    assert got.energy is None and got.total is None and got.missing == ("prices",)


def test_a_missing_standing_charge_is_named() -> None:
    b = book()
    b.charges.clear()
    got = day_cost(DAY, IMPORT, b, settled_day(), TallyData())
    assert got.energy is not None and got.total is None and got.missing == ("standing charge",)


def test_clock_change_days_have_46_and_50_half_hours() -> None:
    assert (
        day_cost(date(2026, 3, 29), IMPORT, TariffBook(), SettledData(), TallyData()).half_hours
        == 46
    )
    assert (
        day_cost(date(2026, 10, 25), IMPORT, TariffBook(), SettledData(), TallyData()).half_hours
        == 50
    )


def test_export_is_earnings_from_settled_data_and_subtracted_from_the_total() -> None:
    b = book()
    b.prices[EXPORT] = {
        hh: Price("E-1R-OUTGOING-C", Decimal("0.15"), Decimal("0.15")) for hh in half_hours(DAY)
    }
    imp = Meter("electricity", "import", "1", "a")
    exp = Meter("electricity", "export", "2", "b")
    data = SettledData(
        {
            imp.key: MeterData(imp, {hh: 0.25 for hh in half_hours(DAY)}),
            exp.key: MeterData(exp, {hh: 0.1 for hh in half_hours(DAY)}),
        }
    )
    report = costs([DAY], [IMPORT, EXPORT], b, data, TallyData())
    imp_day, exp_day = report.days
    assert exp_day.source == SETTLED and exp_day.standing is None
    assert exp_day.total == Decimal("0.72")  # 4.8 kWh x 15p
    assert imp_day.total is not None
    assert report.total() == imp_day.total - Decimal("0.72")
    assert report.total(EXPORT) == Decimal("0.72")


def test_gas_is_priced_per_half_hour_like_electricity() -> None:
    b = TariffBook()
    b.prices[GAS] = {
        hh: Price("G-1R-FIX-C", Decimal("0.0630"), Decimal("0.06")) for hh in half_hours(DAY)
    }
    b.charges[GAS] = {DAY: Charge("G-1R-FIX-C", Decimal("0.31"), Decimal("0.2952"))}
    gas = Meter("gas", "import", "8872014510", "E6S1")
    data = SettledData({gas.key: MeterData(gas, {hh: 1.5 for hh in half_hours(DAY)})})
    got = day_cost(DAY, GAS, b, data, TallyData())
    assert got.kwh == Decimal("72.0")
    assert got.energy == Decimal("4.54")  # 72 kWh x 6.30p = 4.536
    assert got.total == Decimal("4.85")


def test_a_report_knows_what_is_complete() -> None:
    report = costs([DAY, DAY + timedelta(days=1)], [IMPORT], book(), settled_day(), TallyData())
    assert [d.source for d in report.days] == [SETTLED, MISSING]
    assert report.any_known and not report.complete()
    assert report.total() == report.days[0].total
    assert datetime(2026, 11, 30, tzinfo=UTC) == half_hours(DAY)[0]


def test_money_is_rounded_to_the_penny_half_up_and_kwh_half_to_even() -> None:
    from octomon.billing.costs import billed_kwh, pennies

    assert pennies(Decimal("0.125")) == Decimal("0.13")  # money: a half penny up (the docs say)
    assert pennies(Decimal("0.135")) == Decimal("0.14")
    assert pennies(Decimal("-0.125")) == Decimal("-0.13")  # export earnings alike, by magnitude
    assert billed_kwh(Decimal("0.125")) == Decimal("0.12")  # kWh: half to even (Octopus's rule)
    assert billed_kwh(Decimal("0.135")) == Decimal("0.14")
