"""Octopus's billing rules (SPEC §12): half-hours rounded to 0.01 kWh half to even, bill lines
over a range rounded once, the range's total the sum of its lines, partial live days."""

from __future__ import annotations

from datetime import date, timedelta, timezone
from decimal import Decimal

from octomon.billing.costs import EXPORT, IMPORT, LIVE, billed_kwh, costs, day_cost
from octomon.billing.settled import MeterData, SettledData
from octomon.octopus.consumption import Meter
from octomon.octopus.pricebook import Charge, Price, TariffBook
from octomon.readings import Reading
from octomon.store.tally import TallyData, merge
from octomon.uktime import days, half_hours

UTC = timezone.utc
OCT1, OCT31 = date(2026, 10, 1), date(2026, 10, 31)
CODE = "E-1R-VAR-22-11-01-C"
EXPORT_CODE = "E-1R-OUTGOING-FIX-12M-19-05-13-C"


def flat_book(
    first: date, last: date, *, rate: str = "0.2450", standing: str = "0.533295"
) -> TariffBook:
    b = TariffBook()
    for d in days(first, last):
        for hh in half_hours(d):
            b.prices.setdefault(IMPORT, {})[hh] = Price(
                CODE, Decimal(rate), Decimal(rate) / Decimal("1.05")
            )
            b.prices.setdefault(EXPORT, {})[hh] = Price(
                EXPORT_CODE, Decimal("0.15"), Decimal("0.15")
            )
        b.charges.setdefault(IMPORT, {})[d] = Charge(
            CODE, Decimal(standing), Decimal(standing) / Decimal("1.05")
        )
    return b


def settled(first: date, last: date, kwh: float, direction: str = "import") -> SettledData:
    meter = Meter("electricity", direction, "1900051510123", "21E5151012")
    values = {hh: kwh for d in days(first, last) for hh in half_hours(d)}
    return SettledData({meter.key: MeterData(meter, values)})


def test_a_half_hour_is_billed_to_a_hundredth_half_to_even() -> None:
    assert billed_kwh(Decimal("0.125")) == Decimal("0.12")
    assert billed_kwh(Decimal("0.135")) == Decimal("0.14")
    assert billed_kwh(Decimal("0.0049")) == Decimal("0.00")
    assert billed_kwh(Decimal("1.23456")) == Decimal("1.23")


def test_each_half_hour_is_rounded_before_it_is_priced() -> None:
    # 48 × 0.125 kWh: exactly 6.00 kWh, but billed as 48 × 0.12 = 5.76 kWh
    got = day_cost(OCT1, IMPORT, flat_book(OCT1, OCT1), settled(OCT1, OCT1, 0.125), TallyData())
    assert got.kwh == Decimal("5.76")
    assert got.energy == (Decimal("5.76") * Decimal("0.2450")).quantize(Decimal("0.01"))


def test_a_month_of_standing_charges_is_one_line_rounded_once() -> None:
    report = costs(
        days(OCT1, OCT31), [IMPORT], flat_book(OCT1, OCT31), settled(OCT1, OCT31, 0.2), TallyData()
    )
    lines = report.lines()
    standing = [x for x in lines if x.kind == "standing charge"]
    assert len(standing) == 1
    assert standing[0].quantity == 31
    assert standing[0].amount == Decimal("16.53")  # 31 × 53.3295p, not 31 × 53p = 16.43
    assert standing[0].describe() == f"{CODE} standing charge: 31 days @ 53.3295p/day"
    (energy,) = [x for x in lines if x.kind == "energy"]
    # 1,490 half-hours (25 October has 50) × 0.20 kWh
    assert energy.quantity == Decimal("298.00")
    assert energy.amount == Decimal("73.01")  # 298.00 × 0.245 = 73.01
    assert energy.describe() == f"{CODE} electricity: 298.00 kWh @ 24.5p/kWh"
    assert report.total() == Decimal("16.53") + Decimal("73.01")
    # each day's row is rounded on its own (2.352 -> 2.35; 25 Oct 2.45), so they differ
    assert report.rows_total() == 30 * Decimal("2.35") + Decimal("2.45") + 31 * Decimal("0.53")
    assert report.rows_total() != report.total()


def test_export_is_a_line_of_earnings_subtracted_from_the_total() -> None:
    data = settled(OCT1, OCT1, 0.5)
    data.meters.update(settled(OCT1, OCT1, 0.25, "export").meters)
    report = costs([OCT1], [IMPORT, EXPORT], flat_book(OCT1, OCT1), data, TallyData())
    by_kind = {(x.direction, x.kind): x for x in report.lines()}
    earned = by_kind[("export", "energy")]
    assert earned.amount == Decimal("1.80")  # 12 kWh × 15p
    assert report.total(EXPORT) == Decimal("1.80")
    assert report.total() == Decimal("5.88") + Decimal("0.53") - Decimal("1.80")


def test_a_live_day_the_tally_covers_in_part_says_so() -> None:
    fuels: dict[str, dict[int, tuple[int, int]]] = {}
    start = half_hours(OCT1)[-2]  # only the day's last hour
    merge(
        fuels,
        [
            Reading(start + timedelta(seconds=10 * i), "dev", consumption_delta=0.0005)
            for i in range(360)
        ],
    )
    got = day_cost(OCT1, IMPORT, flat_book(OCT1, OCT1), SettledData(), TallyData(fuels))
    assert got.source == LIVE
    assert got.partial and got.covered == 2 and got.half_hours == 48
    whole = day_cost(OCT1, IMPORT, flat_book(OCT1, OCT1), settled(OCT1, OCT1, 0.1), TallyData())
    assert not whole.partial


def test_two_serials_on_one_meter_point_are_never_counted_twice() -> None:
    old = Meter("gas", "import", "8872014510", "E6S10451511961")
    new = Meter("gas", "import", "8872014510", "E6S15151012345")
    slots = half_hours(OCT1)
    later = half_hours(OCT1 + timedelta(days=1))
    data = SettledData(
        {
            old.key: MeterData(old, dict.fromkeys(slots, 9.0)),  # the replaced meter
            new.key: MeterData(new, {**dict.fromkeys(slots, 1.0), **dict.fromkeys(later, 1.0)}),
        }
    )
    assert data.settled_kwh(slots[0], "gas") == 1.0  # the current meter's, not 10.0
    other_point = Meter("gas", "import", "9999999999", "G4P00000000000")
    data.meters[other_point.key] = MeterData(other_point, {slots[0]: 0.5})
    assert data.settled_kwh(slots[0], "gas") == 1.5  # two meter points do add up
