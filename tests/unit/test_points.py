"""Line protocol written once (octomon.store.points), and the sync's byte fast path that
must write the very same bytes."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octomon.billing.reconcile import HalfHourRecon
from octomon.billing.tariffs import lines as tariff_lines
from octomon.daemon.jobs import settled_line
from octomon.octopus.consumption import Meter
from octomon.octopus.pricebook import Charge, Price, TariffBook
from octomon.readings import FIELDS, GAS_FIELDS, GasReading, Reading
from octomon.store import points
from octomon.store.transcode import convert, fast_lines

T0 = datetime(2026, 11, 27, 14, 0, 0, tzinfo=timezone.utc)
STAMP = 1_795_788_000  # T0 in seconds


class Sink:
    def __init__(self) -> None:
        self.bodies: list[tuple[str, int]] = []

    def write_lines(self, body: bytes | str, count: int) -> None:
        assert isinstance(body, str)
        self.bodies.append((body, count))


# --- the parts of a point ----------------------------------------------------------------------


def test_tag_values_are_escaped() -> None:
    assert points.escape_tag(r"a b,c=d\e") == r"a\ b\,c\=d\\e"
    assert points.escape_tag("plain-1.2_3") == "plain-1.2_3"


def test_numbers_are_floats_by_repr_and_integers_only_when_marked() -> None:
    assert points.number(0.1) == "0.1"
    assert points.number(5) == "5.0"  # a plain int is a float field: never a type clash
    assert points.number(Decimal("0.2415")) == "0.2415"
    assert points.number(Decimal("1E+1")) == "10.0"
    assert points.number(1e-07) == "1e-07"
    assert points.number(points.Integer(180)) == "180i"


def test_a_point_has_tags_in_key_order_fields_in_given_order_and_whole_seconds() -> None:
    at = T0 + timedelta(microseconds=999_999)
    line = points.point("m", {"z": "1", "a": "x y"}, {"b": 1.5, "a": points.Integer(2)}, at)
    assert line == f"m,a=x\\ y,z=1 b=1.5,a=2i {STAMP}"


# --- the five measurements, exactly as SPEC §3 has them -------------------------------------


def test_energy_consumption() -> None:
    r = Reading(T0, "00-11 22", consumption_delta=0.0005, demand=0.2, consumption=5038.4145)
    assert r.to_line_protocol() == (
        "energy_consumption,device_id=00-11\\ 22,source=octopus_home_mini "
        f"consumption_delta=0.0005,demand=0.2,consumption=5038.4145 {STAMP}"
    )


def test_gas_consumption() -> None:
    g = GasReading(T0, "GAS-1", consumption_delta=1.25, cost_delta=0.07, volume_delta=0.11)
    assert g.to_line_protocol() == (
        "gas_consumption,device_id=GAS-1,source=octopus_home_mini "
        f"consumption_delta=1.25,cost_delta=0.07,volume_delta=0.11 {STAMP}"
    )


def test_energy_tariff_rates_and_standing_charges() -> None:
    book = TariffBook(
        [],
        {
            ("electricity", "import"): {
                T0: Price("E-1R-AGILE, X", Decimal("0.2415"), Decimal("0.23"))
            }
        },
        {("gas", "import"): {date(2026, 7, 1): Charge("G-1R", Decimal("0.3"), Decimal("0.285"))}},
    )
    bst_midnight = 1_782_860_400  # 2026-07-01 00:00 BST = 2026-06-30 23:00 UTC
    assert tariff_lines(book) == [
        "energy_tariff,direction=import,fuel=electricity,tariff_code=E-1R-AGILE\\,\\ X "
        f"unit_rate=0.2415,unit_rate_exc_vat=0.23 {STAMP}",
        "energy_tariff,direction=import,fuel=gas,tariff_code=G-1R "
        f"standing_charge=0.3,standing_charge_exc_vat=0.285 {bst_midnight}",
    ]


def test_energy_settled_with_and_without_volume() -> None:
    meter = Meter("gas", "import", "123", "G4 X")
    assert settled_line(meter, T0, 1.5) == (
        f"energy_settled,direction=import,fuel=gas,meter=G4\\ X consumption=1.5 {STAMP}"
    )
    assert settled_line(meter, T0, 1.5, 0.14) == (
        f"energy_settled,direction=import,fuel=gas,meter=G4\\ X consumption=1.5,volume=0.14 {STAMP}"
    )


def test_energy_reconciliation() -> None:
    recon = HalfHourRecon(T0, settled=0.5, home_mini=0.4, readings=171)
    assert recon.line() == (
        "energy_reconciliation,fuel=electricity "
        f"settled=0.5,home_mini=0.4,difference=0.1,readings=171i,coverage=0.95 {STAMP}"
    )


# --- sending them in batches -------------------------------------------------------------------


@pytest.mark.parametrize(("n", "size", "counts"), [(0, 3, []), (3, 3, [3]), (7, 3, [3, 3, 1])])
def test_points_go_in_batches_each_line_ending_in_a_newline(
    n: int, size: int, counts: list[int]
) -> None:
    sink = Sink()
    lines = [f"m v={i}.0 {i}" for i in range(n)]
    points.write(sink, lines, size)
    assert [c for _, c in sink.bodies] == counts
    assert all(body.count("\n") == c and body.endswith("\n") for body, c in sink.bodies)
    assert "".join(b for b, _ in sink.bodies).splitlines() == lines


# --- the sync's byte fast path writes the same bytes as points.py ------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
plain_devices = st.text(
    alphabet="0123456789ABCDEFabcdef-_.", min_size=1, max_size=24
)  # what the fast path takes as is
times = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(2200, 12, 31),
    timezones=st.just(timezone.utc),
).map(lambda d: d.replace(microsecond=0))


@st.composite
def electricity(draw: st.DrawFn, device: str) -> Reading:
    present = draw(st.lists(st.sampled_from(FIELDS), min_size=1, unique=True))
    return Reading(draw(times), device, **{name: draw(finite) for name in present})


@st.composite
def gas(draw: st.DrawFn, device: str) -> GasReading:
    present = draw(st.lists(st.sampled_from(GAS_FIELDS), min_size=1, unique=True))
    return GasReading(draw(times), device, **{name: draw(finite) for name in present})


def by_points(r: Reading | GasReading) -> str:
    """The point as points.py writes it, from the reading's values (not its own method)."""
    measurement = points.GAS_CONSUMPTION if isinstance(r, GasReading) else points.CONSUMPTION
    fields = {k: getattr(r, k) for k in r._fields[2:] if getattr(r, k) is not None}
    return points.consumption(measurement, r.device_id, fields, r.read_at)


@settings(max_examples=300, deadline=None)
@given(st.data(), plain_devices, st.integers(1, 40))
def test_the_fast_path_writes_what_points_writes(data: st.DataObject, device: str, n: int) -> None:
    rs = data.draw(st.lists(electricity(device), min_size=n, max_size=n))
    raw = "".join(r.to_json() + "\n" for r in rs).encode()
    expected = "\n".join(by_points(r) for r in rs).encode()
    assert fast_lines(raw) == expected  # taken: a plain device, canonical lines
    assert convert(raw, 0) == (expected, n, [])


@settings(max_examples=200, deadline=None)
@given(st.data(), plain_devices, plain_devices)
def test_the_fast_path_with_gas_lines_writes_what_points_writes(
    data: st.DataObject, elec_device: str, gas_device: str
) -> None:
    rs: list[Reading | GasReading] = [
        *data.draw(st.lists(electricity(elec_device), min_size=1, max_size=20)),
        *data.draw(st.lists(gas(gas_device), min_size=1, max_size=5)),
    ]
    order = data.draw(st.permutations(range(len(rs))))
    mixed = [rs[i] for i in order]
    raw = "".join(r.to_json() + "\n" for r in mixed).encode()
    body, count, bad = convert(raw, 0)
    assert bad == [] and count == len(rs)
    # The fast path sends each fuel's lines as a block of their own: compare as sets.
    assert sorted(body.split(b"\n")) == sorted(by_points(r).encode() for r in mixed)
