"""The gas reading (SPEC §3 ``gas_consumption``, §4.5 gas lines): units, volume, encodings."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from octomon.readings import GasReading, Reading, calorific, from_cache_obj, volume_m3

DEVICE = "00-11-22-33-44-55-66-88"
ITEM = {
    "readAt": "2026-11-30T06:30:00+00:00",
    "consumption": "180609829.0",
    "consumptionDelta": "5957.0",
    "demand": None,
    "costDelta": "34.78888",
    "costDeltaWithTax": "36.5283240",
}


def test_values_are_energy_converted_exactly_and_the_volume_follows_the_formula() -> None:
    r = GasReading.from_api(ITEM, DEVICE, Decimal("39.5"))
    assert r is not None
    assert r.read_at == datetime(2026, 11, 30, 6, 30, tzinfo=timezone.utc)
    assert r.consumption_delta == 5.957
    assert r.consumption == 180609.829
    assert r.cost_delta == 0.3478888
    assert r.cost_delta_with_tax == 0.36528324
    assert r.volume_delta == float(
        Decimal("5.957") * Decimal("3.6") / Decimal("39.5") / Decimal("1.02264")
    )


def test_the_check_value_one_cubic_metre_at_cv_40_is_11_363_kwh() -> None:
    # OCTOPUS_REST.md §6: kWh = m³ x 1.02264 x CV / 3.6 -> 1 m³ at CV 40 is 11.363 kWh.
    assert round(volume_m3(Decimal("11.363"), Decimal(40)), 3) == Decimal("1.000")
    assert Decimal(1) * Decimal("1.02264") * 40 / Decimal("3.6") == pytest.approx(
        Decimal("11.3627"), abs=Decimal("0.0001")
    )


def test_the_calorific_value_is_taken_as_written() -> None:
    assert calorific(39.5) == Decimal("39.5")
    assert calorific(38.7) == Decimal("38.7")  # not 38.70000000000000284...
    assert calorific("40") == Decimal("40")


def test_missing_numbers_are_skipped_and_an_item_without_any_is_dropped() -> None:
    r = GasReading.from_api({"readAt": ITEM["readAt"], "consumption": "10.0"}, DEVICE, Decimal(40))
    assert r is not None and r.fields() == {"consumption": 0.01}  # no delta: no volume
    assert (
        GasReading.from_api({"readAt": ITEM["readAt"], "demand": "1"}, DEVICE, Decimal(40)) is None
    )
    assert GasReading.from_api({"consumption": "1.0"}, DEVICE, Decimal(40)) is None


def test_the_cache_line_carries_fuel_gas_right_after_device_id() -> None:
    r = GasReading.from_api(ITEM, DEVICE, Decimal(40))
    assert r is not None
    line = r.to_json()
    assert line.startswith(
        '{"read_at":"2026-11-30T06:30:00Z","device_id":"00-11-22-33-44-55-66-88","fuel":"gas",'
        '"consumption_delta":5.957,"consumption":180609.829,"cost_delta":0.3478888,'
        '"cost_delta_with_tax":0.36528324,"volume_delta":'
    )
    assert from_cache_obj(json.loads(line)) == r


def test_a_cache_line_without_fuel_is_electricity() -> None:
    obj = {"read_at": "2026-11-30T06:30:10Z", "device_id": "e", "demand": 0.2}
    assert isinstance(from_cache_obj(obj), Reading)
    assert isinstance(from_cache_obj({**obj, "fuel": "electricity"}), Reading)
    with pytest.raises(ValueError, match="unknown fuel"):
        from_cache_obj({**obj, "fuel": "oil"})


def test_line_protocol_is_gas_consumption_with_the_same_tags() -> None:
    r = GasReading(
        datetime(2026, 11, 30, 6, 30, tzinfo=timezone.utc),
        "dev ice,1",
        consumption_delta=1.5,
        consumption=100.0,
        volume_delta=0.25,
    )
    assert r.to_line_protocol() == (
        "gas_consumption,device_id=dev\\ ice\\,1,source=octopus_home_mini "
        "consumption_delta=1.5,consumption=100.0,volume_delta=0.25 1796020200"
    )
