"""Property tests of the API item parser (`Reading.from_api`, `parse_items`)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from octomon.readings import FIELD_MAP, Reading, parse_items

API_FIELDS = [api for _, api, _ in FIELD_MAP]
DEVICE = "12-34-5A-FF-FF-6B-C7-89"
READ_AT = "2024-03-20T17:00:10+00:00"
DIVISOR = {api: divisor for _, api, divisor in FIELD_MAP}
ATTR = {api: name for name, api, _ in FIELD_MAP}

finite_decimals = st.decimals(
    allow_nan=False, allow_infinity=False, min_value=-(10**12), max_value=10**12, places=None
)


def spellings(d: Decimal) -> st.SearchStrategy[str]:
    """The ways a server may write ``d``: plain, scientific (E/e), padded."""
    return st.sampled_from(
        [str(d), f"{d:E}", f"{d:e}", f"{d:f}", f" {d} ", d.normalize().to_eng_string()]
    )


decimal_strings = finite_decimals.flatmap(spellings)

aware_times = st.builds(
    lambda dt, minutes: dt.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)

empty_values = st.sampled_from([None, "", "   ", "n/a", "NaN", "Infinity", "-inf", True, [], {}])


@given(field=st.sampled_from(API_FIELDS), text=decimal_strings)
@example(field="consumptionDelta", text="0E+1")
@example(field="demand", text="624.0")
@example(field="demand", text="-1.5e3")
@example(field="costDelta", text="0.0245")
@example(field="consumption", text="1E-7")
def test_decimal_strings_convert_exactly(field: str, text: str) -> None:
    reading = Reading.from_api({"readAt": READ_AT, field: text}, DEVICE)
    assert reading is not None
    expected = float(Decimal(text.strip()) / DIVISOR[field])
    assert getattr(reading, ATTR[field]) == expected
    others = [getattr(reading, ATTR[f]) for f in API_FIELDS if f != field]
    assert others == [None] * (len(API_FIELDS) - 1)


def test_known_values() -> None:
    item = {
        "readAt": "2024-03-20T17:00:10+00:00",
        "consumption": "5038414.5",
        "consumptionDelta": "0E+1",
        "demand": "624.0",
        "costDelta": "1.2",
        "costDeltaWithTax": "1.26",
        "export": "0.0",
    }
    r = Reading.from_api(item, DEVICE)
    assert r is not None
    assert (r.consumption, r.consumption_delta, r.demand) == (5038.4145, 0.0, 0.624)
    assert (r.cost_delta, r.cost_delta_with_tax, r.export) == (0.012, 0.0126, 0.0)


@given(field=st.sampled_from(API_FIELDS), value=empty_values, other=decimal_strings)
def test_absent_or_empty_fields_are_skipped(field: str, value: Any, other: str) -> None:
    other_field = "demand" if field != "demand" else "consumption"
    item = {"readAt": READ_AT, field: value, other_field: other}
    reading = Reading.from_api(item, DEVICE)
    assert reading is not None
    assert getattr(reading, ATTR[field]) is None
    assert getattr(reading, ATTR[other_field]) is not None


@pytest.mark.parametrize("text", ["1E+400", "-1E+400", "1E+1000010", "9E+999999"])
def test_numbers_beyond_float_range_are_skipped_not_infinite(text: str) -> None:
    assert Reading.from_api({"readAt": READ_AT, "demand": text}, DEVICE) is None
    r = Reading.from_api({"readAt": READ_AT, "demand": text, "consumption": "1"}, DEVICE)
    assert r is not None and r.demand is None and r.consumption == 0.001


def test_tiny_numbers_become_zero() -> None:
    r = Reading.from_api({"readAt": READ_AT, "demand": "1E-1000010"}, DEVICE)
    assert r is not None and r.demand == 0.0


@given(when=aware_times)
def test_read_at_with_any_offset_becomes_utc(when: datetime) -> None:
    reading = Reading.from_api({"readAt": when.isoformat(), "demand": "1"}, DEVICE)
    assert reading is not None
    assert reading.read_at.tzinfo == timezone.utc
    assert reading.read_at == when.replace(microsecond=0)
    assert reading.read_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-20T17:00:10+00:00", datetime(2024, 3, 20, 17, 0, 10, tzinfo=timezone.utc)),
        ("2024-03-20T18:00:10+01:00", datetime(2024, 3, 20, 17, 0, 10, tzinfo=timezone.utc)),
        ("2024-03-20T17:00:10Z", datetime(2024, 3, 20, 17, 0, 10, tzinfo=timezone.utc)),
        ("2024-03-20T17:00:10", datetime(2024, 3, 20, 17, 0, 10, tzinfo=timezone.utc)),
        (" 2024-03-20T17:00:10.999+00:00 ", datetime(2024, 3, 20, 17, 0, 10, tzinfo=timezone.utc)),
    ],
)
def test_read_at_forms(text: str, expected: datetime) -> None:
    reading = Reading.from_api({"readAt": text, "demand": "1"}, DEVICE)
    assert reading is not None and reading.read_at == expected


@pytest.mark.parametrize(
    "read_at",
    [
        None,
        "",
        "  ",
        "yesterday",
        1710954010,
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_items_without_a_usable_read_at_are_dropped(read_at: Any) -> None:
    assert Reading.from_api({"readAt": read_at, "demand": "624.0"}, DEVICE) is None
    assert Reading.from_api({"demand": "624.0"}, DEVICE) is None


item_strategy = st.fixed_dictionaries(
    {},
    optional={
        "readAt": st.one_of(aware_times.map(lambda d: d.isoformat()), st.none(), st.just("")),
        **{f: st.one_of(decimal_strings, empty_values) for f in API_FIELDS},
    },
)


def _usable(item: dict[str, Any]) -> bool:
    read_at = item.get("readAt")
    if not isinstance(read_at, str) or not read_at.strip():
        return False
    for f in API_FIELDS:
        v = item.get(f)
        if isinstance(v, str) and v.strip():
            try:
                d = Decimal(v.strip())
            except ArithmeticError:
                continue
            if d.is_finite() and math.isfinite(float(d)):
                return True
    return False


@given(items=st.lists(st.one_of(item_strategy, st.just("junk"), st.none()), max_size=30))
def test_parse_items_counts_every_dropped_item(items: list[Any]) -> None:
    readings, dropped = parse_items(items, DEVICE)
    usable = sum(1 for i in items if isinstance(i, dict) and _usable(i))
    assert len(readings) == usable
    assert dropped == len(items) - usable
    assert [r.read_at for r in readings] == sorted(r.read_at for r in readings)
    for r in readings:
        assert r.device_id == DEVICE
        assert r.fields()  # never a reading without a number
        assert all(math.isfinite(v) for v in r.fields().values())


@given(when=aware_times, values=st.lists(decimal_strings, min_size=6, max_size=6))
def test_api_item_survives_the_cache_line(when: datetime, values: list[str]) -> None:
    assume(all(math.isfinite(float(Decimal(v.strip()))) for v in values))
    item = {"readAt": when.isoformat(), **dict(zip(API_FIELDS, values))}
    reading = Reading.from_api(item, DEVICE)
    assert reading is not None
    import json

    assert Reading.from_obj(json.loads(reading.to_json())) == reading
