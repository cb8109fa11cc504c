"""Pricing rules that need no server: tariff codes, discovery, rows, windows, the schedule."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import responses

from octomon.billing.tariffs import lines, write
from octomon.daemon.jobs import next_anchor
from octomon.errors import ApiError
from octomon.octopus.pricebook import Price, TariffBook, cheapest_window, in_window
from octomon.octopus.published import Pricing, Published, Rate
from octomon.octopus.tariffs import gbp, is_dual_register, meter_points, product_code

UK = ZoneInfo("Europe/London")
UTC = timezone.utc


def uk(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), UK).astimezone(UTC)


@pytest.mark.parametrize(
    ("code", "product", "dual"),
    [
        ("E-1R-AGILE-24-10-01-C", "AGILE-24-10-01", False),
        ("E-2R-SUPER-GREEN-24M-21-07-30-A", "SUPER-GREEN-24M-21-07-30", True),
        ("G-1R-SUPER-GREEN-24M-21-07-30-A", "SUPER-GREEN-24M-21-07-30", False),
        ("E-1R-OUTGOING-VAR-24-10-26-L", "OUTGOING-VAR-24-10-26", False),
        ("V2G-EXPORT-12M-FIXED-22-12-01-C", "V2G-EXPORT-12M-FIXED-22-12-01", False),
    ],
)
def test_product_code_from_the_tariff_code(code: str, product: str, dual: bool) -> None:
    assert product_code(code) == product
    assert is_dual_register(code) is dual


def point(mpan: str, export: bool, *agreements: tuple[str, str, str | None]) -> dict[str, Any]:
    return {
        "mpan": mpan,
        "is_export": export,
        "meters": [{"serial_number": f"S{mpan}"}],
        "agreements": [
            {"tariff_code": c, "valid_from": a, "valid_to": b} for c, a, b in agreements
        ],
    }


def test_discovery_takes_the_current_property_and_its_import_export_and_gas_points() -> None:
    moved_in = "2023-06-15T00:00:00+01:00"
    switch_text = "2024-01-01T00:00:00Z"
    old = {
        "moved_in_at": "2019-01-01T00:00:00Z",
        "moved_out_at": moved_in,
        "electricity_meter_points": [point("1", False, ("E-1R-OLD-C", "2019-01-01T00:00Z", None))],
        "gas_meter_points": [],
    }
    gas = {
        "mprn": "9",
        "meters": [{"serial_number": "G1"}, {"serial_number": "G2"}],
        "agreements": [{"tariff_code": "G-1R-FIX-C", "valid_from": moved_in, "valid_to": None}],
    }
    current = {
        "moved_in_at": moved_in,
        "moved_out_at": None,
        "electricity_meter_points": [
            point(
                "2",
                False,
                ("E-1R-FIX-C", moved_in, switch_text),
                ("E-1R-AGILE-24-10-01-C", switch_text, None),
            ),
            point("3", True, ("E-1R-OUTGOING-VAR-24-10-26-C", "2024-02-01T00:00:00Z", None)),
        ],
        "gas_meter_points": [gas],
    }
    account = {"number": "A-1234ABCD", "properties": [old, current]}
    points = meter_points(account)
    assert [(p.fuel, p.direction, p.identifier) for p in points] == [
        ("electricity", "import", "2"),
        ("electricity", "export", "3"),
        ("gas", "import", "9"),
    ]
    imp = points[0]
    switch = datetime(2024, 1, 1, tzinfo=UTC)
    assert imp.agreement_at(switch - timedelta(minutes=30)).tariff_code == "E-1R-FIX-C"  # type: ignore[union-attr]
    assert imp.agreement_at(switch).tariff_code == "E-1R-AGILE-24-10-01-C"  # type: ignore[union-attr]
    assert imp.agreement_at(datetime(2023, 6, 14, 23, 0, tzinfo=UTC)) is not None  # +01:00
    assert imp.agreement_at(datetime(2023, 6, 14, 22, 30, tzinfo=UTC)) is None
    assert points[2].serials == ("G1", "G2")


def test_an_account_without_a_current_property_is_named() -> None:
    with pytest.raises(ApiError, match="A-1234ABCD has no current property"):
        meter_points({"number": "A-1234ABCD", "properties": [{"moved_out_at": "2020-01-01"}]})


@pytest.mark.parametrize(
    ("pence", "gbp_value"),
    [
        (25.0005, "0.250005"),
        (18.291, "0.18291"),
        (-2.079, "-0.02079"),
        (47, "0.47"),
        ("0.1", "0.001"),
    ],
)
def test_pence_become_gbp_exactly(pence: object, gbp_value: str) -> None:
    assert gbp(pence) == Decimal(gbp_value)


def test_bad_values_are_not_prices() -> None:
    assert (
        gbp(None) is None and gbp(True) is None and gbp("x") is None and gbp(float("nan")) is None
    )


def test_night_windows_may_wrap_midnight() -> None:
    at = lambda h, m: datetime(2026, 1, 1, h, m, tzinfo=UTC)  # noqa: E731
    assert in_window(at(0, 30), (30, 450)) and not in_window(at(7, 30), (30, 450))
    assert not in_window(at(0, 0), (30, 450))
    assert in_window(at(23, 30), (1410, 390)) and in_window(at(6, 0), (1410, 390))
    assert not in_window(at(6, 30), (1410, 390))


def book_of(prices: dict[datetime, str]) -> TariffBook:
    return TariffBook(
        prices={
            ("electricity", "import"): {
                t: Price("E-1R-AGILE-24-10-01-C", Decimal(v), Decimal(v) / Decimal("1.05"))
                for t, v in prices.items()
            }
        }
    )


def test_the_cheapest_window_is_contiguous_and_still_ahead() -> None:
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    values = ["0.30", "0.01", "0.20", "0.05", "0.06", "0.50", "0.02", "0.03"]
    book = book_of({t0 + timedelta(minutes=30 * i): v for i, v in enumerate(values)})
    now = t0 + timedelta(minutes=40)  # the 0.01 half-hour has begun: not ahead
    one = cheapest_window(book, now, 1)
    assert one is not None and one.start == t0 + timedelta(hours=3)  # 0.02 + 0.03
    assert one.average == Decimal("0.025")
    two = cheapest_window(book, now, 2)
    assert two is not None and two.start == t0 + timedelta(hours=2)  # 0.06+0.50+0.02+0.03
    assert two.average == Decimal("0.1525")
    three = cheapest_window(book, now, 3)
    assert three is not None and three.start == t0 + timedelta(hours=1)
    assert cheapest_window(book, now, 4) is None  # only 6 half-hours ahead
    del book.prices[("electricity", "import")][t0 + timedelta(hours=3, minutes=30)]
    one = cheapest_window(book, now, 1)
    assert one is not None and one.start == t0 + timedelta(hours=1, minutes=30)  # a hole


def test_energy_tariff_line_protocol() -> None:
    t = datetime(2026, 1, 31, 13, 30, tzinfo=UTC)
    book = book_of({t: "0.250005"})
    assert lines(book) == [
        "energy_tariff,direction=import,fuel=electricity,tariff_code=E-1R-AGILE-24-10-01-C "
        f"unit_rate=0.250005,unit_rate_exc_vat={float(Decimal('0.250005') / Decimal('1.05'))!r} "
        f"{int(t.timestamp())}"
    ]


def test_points_are_written_in_batches() -> None:
    sent: list[tuple[str, int]] = []

    class Sink:
        def write_lines(self, body: str | bytes, count: int) -> None:
            sent.append((str(body), count))

    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    book = book_of({t0 + timedelta(minutes=30 * i): "0.2" for i in range(12_001)})
    write(Sink(), lines(book))
    assert [count for _, count in sent] == [5000, 5000, 2001]
    assert all(body.count("\n") == count for body, count in sent)


def e7_rates(code: str = "E-2R-VAR-22-11-01-A") -> tuple[Rate, ...]:
    return (
        Rate(code, "day", "DIRECT_DEBIT", Decimal("0.29505"), Decimal("0.281")),
        Rate(code, "day", "NON_DIRECT_DEBIT", Decimal("0.3"), Decimal("0.28571")),
        Rate(code, "night", "DIRECT_DEBIT", Decimal("0.132174"), Decimal("0.12588")),
        Rate(code, "night", "NON_DIRECT_DEBIT", Decimal("0.1428"), Decimal("0.136")),
    )


def test_the_published_rows_round_trip_through_json_exactly() -> None:
    import json

    t = datetime(2026, 1, 31, 13, 30, tzinfo=UTC)
    agile = Rate("E-1R-AGILE-24-10-01-C", "standard", None, Decimal("-0.02079"), Decimal("-0.0198"))
    standing = Rate(
        "E-2R-VAR-22-11-01-A", "standing", "DIRECT_DEBIT", Decimal("0.4"), Decimal("0.38")
    )
    book = Published(
        prices={("electricity", "import"): {t: e7_rates(), t + timedelta(minutes=30): (agile,)}},
        charges={("electricity", "import"): {date(2026, 1, 31): (standing,)}},
    )
    obj = json.loads(json.dumps(book.to_obj()))
    assert len(obj["rates"]["electricity/import"]) == 6  # each distinct row once
    again = Published.from_obj(obj)
    assert again.prices == book.prices and again.charges == book.charges


def test_the_kept_rows_are_priced_for_the_payment_method_and_the_night_window() -> None:
    night, day = datetime(2026, 1, 31, 1, 0, tzinfo=UTC), datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    series = ("electricity", "import")
    book = Published(prices={series: {night: e7_rates(), day: e7_rates()}})
    dd = book.priced(Pricing("direct_debit", (30, 450)))
    assert dd.prices[series][night].unit_rate == Decimal("0.132174")
    assert dd.prices[series][day].unit_rate == Decimal("0.29505")
    other = book.priced(Pricing("non_direct_debit", (600, 780)))  # 10:00-13:00: noon is night
    assert other.prices[series][night].unit_rate == Decimal("0.3")
    assert other.prices[series][day].unit_rate == Decimal("0.1428")


def test_a_row_naming_the_payment_method_wins_over_a_null_one() -> None:
    t = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    code = "E-1R-VAR-22-11-01-A"
    rates = (
        Rate(code, "standard", None, Decimal("0.2"), Decimal("0.19")),
        Rate(code, "standard", "DIRECT_DEBIT", Decimal("0.25"), Decimal("0.24")),
    )
    book = Published(prices={("electricity", "import"): {t: rates}})
    assert book.priced(Pricing("direct_debit", (30, 450))).price_at(t) == Price(
        code, Decimal("0.25"), Decimal("0.24")
    )
    assert book.priced(Pricing("non_direct_debit", (30, 450))).price_at(t) == Price(
        code, Decimal("0.2"), Decimal("0.19")
    )


def test_the_pricing_signature_reads_back() -> None:
    pricing = Pricing("non_direct_debit", (1410, 390))
    assert pricing.signature() == "non_direct_debit 23:30-06:30"
    assert Pricing.parse(pricing.signature()) == pricing
    assert Pricing.parse("direct_debit nonsense") is None


# --- the schedule: 16:05 UK daily, hourly at hh:05 while tomorrow is missing, until 23:00 ---


@pytest.mark.parametrize(
    ("now", "complete", "anchor"),
    [
        (uk(date(2026, 12, 1), 10, 17), False, uk(date(2026, 12, 1), 16, 5)),
        (uk(date(2026, 12, 1), 10, 17), True, uk(date(2026, 12, 1), 16, 5)),
        (uk(date(2026, 12, 1), 16, 17), True, uk(date(2026, 12, 2), 16, 5)),
        (uk(date(2026, 12, 1), 16, 17), False, uk(date(2026, 12, 1), 17, 5)),
        (uk(date(2026, 12, 1), 21, 30), False, uk(date(2026, 12, 1), 22, 5)),
        (uk(date(2026, 12, 1), 22, 25), False, uk(date(2026, 12, 2), 16, 5)),
        (uk(date(2026, 7, 1), 16, 9), False, uk(date(2026, 7, 1), 17, 5)),  # BST
        (uk(date(2026, 7, 1), 23, 40), False, uk(date(2026, 7, 2), 16, 5)),
    ],
)
def test_next_anchor(now: datetime, complete: bool, anchor: datetime) -> None:
    assert next_anchor(now, complete) == anchor


@responses.activate
def test_rates_missing_from_the_api_name_the_tariff_and_the_product() -> None:
    from octomon.errors import NotFound
    from octomon.octopus.budget import Budget
    from octomon.octopus.pricebook import Agreement, MeterPoint
    from octomon.octopus.rest import RestClient
    from octomon.octopus.tariffs import fetch

    base = "https://api.octopus.test/v1/"
    code = "E-1R-FLAT2R-24-01-01-C"
    responses.get(
        base + f"products/FLAT2R-24-01-01/electricity-tariffs/{code}/standard-unit-rates/",
        status=404,
        json={"detail": "Not found."},
    )
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    point = MeterPoint("electricity", "import", "1900", ("S1",), (Agreement(code, t0, None),))
    client = RestClient(api_key="sk_live_" + "x" * 24, base_url=base, budget=Budget(None, 75))
    with pytest.raises(NotFound) as err:
        fetch(client, [point], t0, t0 + timedelta(days=1))
    assert str(err.value) == (
        f"the Octopus API has no standard-unit-rates for tariff {code} (product "
        "FLAT2R-24-01-01) on electricity meter point 1900"
    )
