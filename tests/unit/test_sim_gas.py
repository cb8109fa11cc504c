"""The simulator's gas (SPEC §8, §11): the account's two gas meters, half-hourly energy
uploaded late, its switches. Driven through ``SimHomeMini.handle`` (the transport-free entry)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from octomon.sim import SimHomeMini
from octomon.sim.account import GAS_DEVICE_ID, GAS_SERIAL, GAS_SERIAL_OLD, MPRN
from tests.helpers.clock import ManualClock
from tests.helpers.sim_faults import FaultySim

UTC = timezone.utc
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HALF = timedelta(minutes=30)

ACCOUNT_Q = """query Devices($accountNumber: String!) {
  account(accountNumber: $accountNumber) {
    electricityAgreements(active: true) { meterPoint { mpan } }
    gasAgreements(active: true) { meterPoint { mprn meters(includeInactive: false) {
      serialNumber consumptionUnits smartGasMeter { deviceId } } } }
  }
}"""
TELEMETRY_Q = """query Telemetry($deviceId: String!, $start: DateTime, $end: DateTime,
                 $grouping: TelemetryGrouping) {
  smartMeterTelemetry(deviceId: $deviceId, start: $start, end: $end, grouping: $grouping) {
    readAt consumption consumptionDelta demand costDelta costDeltaWithTax
  }
}"""


class Api:
    """A minimal client: a fresh token for every request (tests move the sim clock by hours)."""

    def __init__(self, sim: SimHomeMini) -> None:
        self.sim = sim

    def _send(self, query: str, variables: dict[str, Any], auth: str | None) -> tuple[int, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        resp = self.sim.handle("POST", "/v1/graphql/", auth, body)
        return resp.status, json.loads(resp.body)

    def post(self, query: str, variables: dict[str, Any]) -> tuple[int, Any]:
        login = (
            "mutation T($input: ObtainJSONWebTokenInput!) "
            "{ obtainKrakenToken(input: $input) { token } }"
        )
        token = self._send(login, {"input": {"APIKey": self.sim.api_key}}, None)[1]
        return self._send(query, variables, token["data"]["obtainKrakenToken"]["token"])

    def gas(self, start: datetime, end: datetime, grouping: str = "HALF_HOURLY") -> list[Any]:
        status, body = self.post(
            TELEMETRY_Q,
            {
                "deviceId": GAS_DEVICE_ID,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "grouping": grouping,
            },
        )
        assert status == 200 and "errors" not in body, body
        rows: list[Any] = body["data"]["smartMeterTelemetry"]
        return rows


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def sim(clock: ManualClock) -> SimHomeMini:
    return FaultySim(clock=clock)


@pytest.fixture
def api(sim: SimHomeMini) -> Api:
    return Api(sim)


def test_the_gas_meter_point_lists_two_meters_only_the_second_smart(api: Api) -> None:
    status, body = api.post(ACCOUNT_Q, {"accountNumber": api.sim.account_number})
    assert status == 200
    assert body["data"]["account"]["gasAgreements"] == [
        {
            "meterPoint": {
                "mprn": MPRN,
                "meters": [
                    {
                        "serialNumber": GAS_SERIAL_OLD,
                        "consumptionUnits": "m³",
                        "smartGasMeter": None,
                    },
                    {
                        "serialNumber": GAS_SERIAL,
                        "consumptionUnits": "m³",
                        "smartGasMeter": {"deviceId": GAS_DEVICE_ID},
                    },
                ],
            }
        }
    ]


def test_no_gas_schema_rejects_the_gas_fields_and_no_gas_lists_none(api: Api) -> None:
    api.sim.no_gas_schema = True
    status, body = api.post(ACCOUNT_Q, {"accountNumber": api.sim.account_number})
    assert status == 400 and "data" not in body
    assert body["errors"][0]["message"] == (
        'Cannot query field "gasAgreements" on type "AccountType".'
    )
    without_gas = ACCOUNT_Q.split("gasAgreements")[0] + "} }"
    assert api.post(without_gas, {"accountNumber": api.sim.account_number})[0] == 200
    api.sim.no_gas_schema = False
    api.sim.no_gas = True
    status, body = api.post(ACCOUNT_Q, {"accountNumber": api.sim.account_number})
    assert status == 200 and body["data"]["account"]["gasAgreements"] == []
    status, body = api.post(TELEMETRY_Q, {"deviceId": GAS_DEVICE_ID})
    assert body["errors"][0]["extensions"]["errorCode"] == "KT-GB-4050"


def test_half_hours_are_energy_strings_with_a_register_that_adds_up(api: Api) -> None:
    rows = api.gas(datetime(2026, 11, 28, tzinfo=UTC), datetime(2026, 11, 30, 6, tzinfo=UTC))
    times = [datetime.fromisoformat(r["readAt"]) for r in rows]
    assert all(t.minute in (0, 30) and t.second == 0 for t in times)
    assert 2 * 48 + 12 - 3 <= len(rows) <= 2 * 48 + 12  # a lost half-hour some days
    for prev, cur, t_prev, t_cur in zip(rows, rows[1:], times, times[1:], strict=False):
        step = Decimal(cur["consumption"]) - Decimal(prev["consumption"])
        if t_cur - t_prev == HALF:  # across midnight too
            assert step == Decimal(cur["consumptionDelta"])
        else:  # over a lost half-hour the register kept counting
            assert step > Decimal(cur["consumptionDelta"])
    for r in rows:
        wh = Decimal(r["consumptionDelta"])
        assert r["demand"] is None
        assert Decimal(r["costDelta"]) == wh * Decimal("0.00584")
        assert Decimal(r["costDeltaWithTax"]) == wh * Decimal("0.00584") * Decimal("1.05")
    day = [r for r, t in zip(rows, times, strict=True) if t.date().day == 29]
    kwh = sum(Decimal(r["consumptionDelta"]) for r in day) / 1000
    assert 20 < kwh < 80  # a late-November day with heating, hot water and cooking
    morning = [
        Decimal(r["consumptionDelta"])
        for r, t in zip(rows, times, strict=True)
        if t.date().day == 29 and 6 <= t.hour < 9
    ]
    night = [
        Decimal(r["consumptionDelta"])
        for r, t in zip(rows, times, strict=True)
        if t.date().day == 29 and 1 <= t.hour < 5
    ]
    assert max(morning) > 1000 > max(night)


def test_a_half_hour_is_served_20_to_35_minutes_after_it_ends(
    sim: SimHomeMini, clock: ManualClock, api: Api
) -> None:
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    for k in range(4):
        half = start + k * HALF
        if sim.gas_reading_at(half) is None:
            continue
        ready = sim.gas_available_at(half)
        assert timedelta(minutes=20) <= ready - (half + HALF) <= timedelta(minutes=35)
        clock.now = ready - timedelta(seconds=1)
        assert half not in {datetime.fromisoformat(r["readAt"]) for r in api.gas(half, half + HALF)}
        clock.now = ready
        assert api.gas(half, half + HALF) == [
            {k: v for k, v in (sim.gas_reading_at(half) or {}).items() if k != "export"}
        ]


def test_finer_groupings_give_the_half_hours_and_hourly_sums_pairs(api: Api) -> None:
    start, end = datetime(2026, 11, 30, 6, tzinfo=UTC), datetime(2026, 11, 30, 10, tzinfo=UTC)
    halves = api.gas(start, end)
    assert api.gas(start, end, "TEN_SECONDS") == halves
    hours = api.gas(start, end, "HOURLY")
    assert [r["readAt"][11:16] for r in hours] == ["06:00", "07:00", "08:00", "09:00"]
    first_hour = [r for r in halves if r["readAt"][11:13] == "06"]
    assert Decimal(hours[0]["consumptionDelta"]) == sum(
        Decimal(r["consumptionDelta"]) for r in first_hour
    )
    assert hours[0]["consumption"] == first_hour[-1]["consumption"]


def test_a_frozen_gas_meter_loses_the_frozen_span(
    sim: SimHomeMini, clock: ManualClock, api: Api
) -> None:
    sim.freeze_gas(at=NOW - timedelta(hours=6))
    clock.advance(hours=1)
    before = api.gas(NOW - timedelta(hours=8), NOW - timedelta(hours=6))
    assert api.gas(NOW - timedelta(hours=8), NOW) == before
    body = api.post(TELEMETRY_Q, {"deviceId": GAS_DEVICE_ID})[1]
    assert body["data"]["smartMeterTelemetry"][0]["readAt"] < (NOW - timedelta(hours=6)).isoformat()
    sim.unfreeze_gas()
    clock.advance(hours=2)
    after = api.gas(NOW - timedelta(hours=8), clock.now)
    times = [datetime.fromisoformat(r["readAt"]) for r in after]
    assert after[: len(before)] == before
    assert min(t for t in times if t >= NOW - timedelta(hours=6)) >= NOW + timedelta(hours=1)


def test_the_gas_device_id_must_be_a_variable(api: Api) -> None:
    literal = f'query L {{ smartMeterTelemetry(deviceId: "{GAS_DEVICE_ID}") {{ readAt }} }}'
    body = api.post(literal, {})[1]
    assert body["errors"][0]["extensions"]["errorCode"] == "SIM-LITERAL-SECRET"
