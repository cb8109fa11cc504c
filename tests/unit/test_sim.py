"""The simulated Home Mini (SPEC section 8), driven over real HTTP on loopback.

The sim backs the demo, the integration tests and the benchmarks, so these tests pin down what
they rely on: Kraken's error shapes and codes, the readings as a pure function of (seed, ts),
and every fault switch.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import requests

from octomon.sim import (
    DEFAULT_ACCOUNT,
    DEFAULT_API_KEY,
    DEFAULT_DEVICE_ID,
    GROUPINGS,
    SimHomeMini,
    SimServer,
)
from tests.helpers.clock import ManualClock as Clock
from tests.helpers.sim_faults import FaultySim

UTC = timezone.utc
T0 = datetime(2026, 3, 20, 17, 0, tzinfo=UTC)
STEP = timedelta(seconds=10)

TOKEN_Q = """mutation ObtainToken($input: ObtainJSONWebTokenInput!) {
  obtainKrakenToken(input: $input) { token refreshToken refreshExpiresIn payload }
}"""
ACCOUNT_Q = """query Devices($accountNumber: String!) {
  account(accountNumber: $accountNumber) {
    electricityAgreements(active: true) {
      meterPoint { mpan meters(includeInactive: false) {
        serialNumber
        smartImportElectricityMeter { deviceId }
        smartDevices { deviceId type }
      } }
    }
  }
}"""
FIELDS = "readAt consumption consumptionDelta demand costDelta costDeltaWithTax export"
TELEMETRY_Q = """query Telemetry($deviceId: String!, $start: DateTime, $end: DateTime,
                 $grouping: TelemetryGrouping) {
  smartMeterTelemetry(deviceId: $deviceId, start: $start, end: $end, grouping: $grouping) {
    SELECTION
  }
}"""


def telemetry_query(fields: str = FIELDS) -> str:
    return TELEMETRY_Q.replace("SELECTION", fields)


class Client:
    """A minimal Kraken client, as octomon's must be: variables only, raw token header."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.token: str | None = None

    def post(self, query: str, variables: dict[str, Any] | None = None) -> requests.Response:
        headers = {"Authorization": self.token} if self.token else {}
        return self.http.post(
            self.url, json={"query": query, "variables": variables or {}}, headers=headers
        )

    def login(self, **given: str) -> dict[str, Any]:
        resp = self.post(TOKEN_Q, {"input": given or {"APIKey": DEFAULT_API_KEY}})
        body: dict[str, Any] = resp.json()["data"]["obtainKrakenToken"]
        self.token = body["token"]
        return body

    def telemetry(self, fields: str = FIELDS, **variables: Any) -> requests.Response:
        variables.setdefault("deviceId", DEFAULT_DEVICE_ID)
        return self.post(telemetry_query(fields), variables)

    def readings(self, start: datetime, end: datetime, grouping: str = "TEN_SECONDS") -> Any:
        resp = self.telemetry(start=start.isoformat(), end=end.isoformat(), grouping=grouping)
        assert resp.status_code == 200, resp.text
        assert "errors" not in resp.json(), resp.text
        return resp.json()["data"]["smartMeterTelemetry"]


def codes(resp: requests.Response) -> list[str]:
    return [e["extensions"]["errorCode"] for e in resp.json().get("errors", [])]


def dec(value: str | None) -> Decimal:
    """A decimal string of the API as a number (None is a test failure here)."""
    assert value is not None
    return Decimal(value)


def steps(start: datetime, end: datetime) -> Iterator[datetime]:
    t = start
    while t < end:
        yield t
        t += STEP


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def sim(clock: Clock) -> SimHomeMini:
    return FaultySim(clock=clock)


@pytest.fixture
def server(sim: SimHomeMini) -> Iterator[SimServer]:
    with SimServer(sim) as srv:
        yield srv


@pytest.fixture
def client(server: SimServer) -> Iterator[Client]:
    c = Client(server.url)
    yield c
    c.http.close()


@pytest.fixture
def authed(client: Client) -> Client:
    client.login()
    return client


# ------------------------------------------------------------------ authentication


def test_api_key_gives_a_60_minute_token_and_a_7_day_refresh_token(client: Client) -> None:
    body = client.login()
    now = int(T0.timestamp())
    assert body["payload"]["iat"] == now
    assert body["payload"]["exp"] == now + 3600
    assert body["refreshExpiresIn"] == now + 7 * 86400
    assert body["token"].count(".") == 2  # shaped like a JWT
    assert client.post(ACCOUNT_Q, {"accountNumber": DEFAULT_ACCOUNT}).status_code == 200


def test_token_expires_after_60_minutes_of_sim_clock(authed: Client, clock: Clock) -> None:
    clock.advance(minutes=59)
    assert codes(authed.telemetry()) == []
    clock.advance(minutes=1)
    resp = authed.telemetry()
    assert resp.status_code == 200
    assert codes(resp) == ["KT-CT-1124"]
    assert resp.json()["errors"][0]["message"] == "Signature of the JWT has expired."
    assert resp.json()["data"] == {"smartMeterTelemetry": None}


def test_refresh_token_renews_without_extending_itself(client: Client, clock: Clock) -> None:
    first = client.login()
    clock.advance(days=6)
    renewed = client.login(refreshToken=first["refreshToken"])
    assert renewed["token"] != first["token"]
    assert renewed["refreshToken"] == first["refreshToken"]
    assert renewed["refreshExpiresIn"] == first["refreshExpiresIn"]
    assert renewed["payload"]["exp"] == int(clock.now.timestamp()) + 3600
    assert codes(client.telemetry()) == []
    clock.advance(days=1)
    resp = client.post(TOKEN_Q, {"input": {"refreshToken": first["refreshToken"]}})
    assert codes(resp) == ["KT-CT-1135"]
    resp = client.post(TOKEN_Q, {"input": {"refreshToken": "not-a-refresh-token"}})
    assert codes(resp) == ["KT-CT-1135"]


def test_bad_api_key_is_kt_ct_1139_with_http_200(client: Client) -> None:
    resp = client.post(TOKEN_Q, {"input": {"APIKey": "sk_live_wrong"}})
    assert resp.status_code == 200
    assert codes(resp) == ["KT-CT-1139"]
    assert resp.json()["errors"][0]["message"] == "Authentication failed."
    assert resp.json()["data"] == {"obtainKrakenToken": None}
    ext = resp.json()["errors"][0]["extensions"]
    assert set(ext) >= {"errorType", "errorCode", "errorDescription"}


def test_expire_tokens_fault(authed: Client, sim: SimHomeMini) -> None:
    old = authed.token
    sim.expire_tokens()
    assert codes(authed.telemetry()) == ["KT-CT-1124"]
    authed.login()
    assert codes(authed.telemetry()) == []
    authed.token = old  # an expired token stays "expired", never "unknown"
    assert codes(authed.telemetry()) == ["KT-CT-1124"]


def test_expire_tokens_can_expire_refresh_tokens_too(client: Client, sim: SimHomeMini) -> None:
    refresh = client.login()["refreshToken"]
    sim.expire_tokens(refresh=True)
    assert codes(client.post(TOKEN_Q, {"input": {"refreshToken": refresh}})) == ["KT-CT-1135"]
    client.login()  # the API key still works


def test_authorization_header_missing_unknown_and_jwt_prefixed(authed: Client) -> None:
    token = authed.token
    authed.token = None
    assert codes(authed.telemetry()) == ["KT-CT-1112"]
    authed.token = "eyJ.not.issued"
    assert codes(authed.telemetry()) == ["KT-CT-1111"]
    authed.token = f"JWT {token}"
    assert codes(authed.telemetry()) == []


# ------------------------------------------------------------------ the account


def test_account_discovery_lists_the_esme_not_first(authed: Client) -> None:
    resp = authed.post(ACCOUNT_Q, {"accountNumber": DEFAULT_ACCOUNT.lower()})
    assert resp.status_code == 200
    (agreement,) = resp.json()["data"]["account"]["electricityAgreements"]
    (meter,) = agreement["meterPoint"]["meters"]
    assert meter["smartImportElectricityMeter"] == {"deviceId": DEFAULT_DEVICE_ID}
    types = [d["type"] for d in meter["smartDevices"]]
    assert types[0] != "ESME" and "IHD" in types
    esme = [d["deviceId"] for d in meter["smartDevices"] if d["type"] == "ESME"]
    assert esme == [DEFAULT_DEVICE_ID]


def test_account_returns_only_the_fields_asked_for(authed: Client) -> None:
    query = ACCOUNT_Q.replace("mpan ", "").replace("serialNumber", "")
    meter_point = authed.post(query, {"accountNumber": DEFAULT_ACCOUNT}).json()["data"]["account"][
        "electricityAgreements"
    ][0]["meterPoint"]
    assert "mpan" not in meter_point and "serialNumber" not in meter_point["meters"][0]


def test_wrong_account_number_is_kt_ct_4123(authed: Client) -> None:
    resp = authed.post(ACCOUNT_Q, {"accountNumber": "A-00000000"})
    assert codes(resp) == ["KT-CT-4123"]
    assert resp.json()["data"] == {"account": None}


def test_no_device_fault(authed: Client, sim: SimHomeMini) -> None:
    sim.no_device = True
    resp = authed.post(ACCOUNT_Q, {"accountNumber": DEFAULT_ACCOUNT})
    meter = resp.json()["data"]["account"]["electricityAgreements"][0]["meterPoint"]["meters"][0]
    assert meter["smartImportElectricityMeter"] is None
    assert meter["smartDevices"] == []
    assert codes(authed.telemetry()) == ["KT-GB-4050"]


# ------------------------------------------------------------------ telemetry


def test_range_serves_exactly_the_readings_of_reading_at(
    authed: Client, sim: SimHomeMini, clock: Clock
) -> None:
    clock.advance(minutes=10)  # everything in the window is uploaded by now
    start, end = T0 - timedelta(hours=6), T0
    got = authed.readings(start, end)
    expected = [r for r in map(sim.reading_at, steps(start, end)) if r is not None]
    assert got == expected
    assert 2100 < len(got) < 2160  # ~1 % gaps
    assert got[0]["readAt"] >= start.isoformat() and got[-1]["readAt"] < end.isoformat()
    for item in got:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d0\+00:00", item["readAt"])
        for key in ("consumption", "consumptionDelta", "demand", "costDelta", "export"):
            Decimal(item[key])
    values = {item["consumptionDelta"] for item in got}
    assert "0E+1" in values and "1.0" in values
    assert all(item["demand"].endswith(".0") for item in got)
    assert set(sim.served) == {datetime.fromisoformat(item["readAt"]) for item in got}


def test_start_inclusive_end_exclusive_and_utc_without_offset(authed: Client, clock: Clock) -> None:
    clock.advance(minutes=10)
    got = authed.readings(T0 - timedelta(minutes=10), T0)
    assert got[-1]["readAt"] < T0.isoformat()
    start = datetime.fromisoformat(got[3]["readAt"])
    window = authed.readings(start, start + timedelta(minutes=2))
    assert window[0]["readAt"] == got[3]["readAt"]
    naive = authed.telemetry(
        start=start.replace(tzinfo=None).isoformat(),
        end=(start + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        grouping="TEN_SECONDS",
    )
    assert naive.json()["data"]["smartMeterTelemetry"] == window


def test_only_the_selected_fields_are_returned(authed: Client, clock: Clock) -> None:
    clock.advance(minutes=10)
    resp = authed.telemetry(
        "readAt demand",
        start=(T0 - timedelta(minutes=5)).isoformat(),
        end=T0.isoformat(),
        grouping="TEN_SECONDS",
    )
    items = resp.json()["data"]["smartMeterTelemetry"]
    assert items and all(set(item) == {"readAt", "demand"} for item in items)


def test_register_deltas_and_costs_are_consistent_across_midnight(sim: SimHomeMini) -> None:
    midnight = datetime(2026, 3, 21, tzinfo=UTC)
    previous: dict[str, Any] | None = None
    blanks = 0
    for ts in steps(midnight - timedelta(hours=3), midnight + timedelta(hours=3)):
        item = sim.reading_at(ts)
        if item is None:
            previous = None  # the register kept counting through the gap
            continue
        delta = dec(item["consumptionDelta"])
        if previous is not None:
            assert dec(item["consumption"]) - dec(previous["consumption"]) == delta
        assert dec(item["costDelta"]) == delta * Decimal("0.0245")
        if item["costDeltaWithTax"]:
            assert dec(item["costDeltaWithTax"]) == delta * Decimal("0.0245") * Decimal("1.05")
        else:
            blanks += 1
        assert item["export"] == "0.0"
        previous = item
    assert blanks < 10


def test_the_register_never_goes_backwards(sim: SimHomeMini) -> None:
    last = Decimal(0)
    for day in range(40):
        for hour in (0, 12, 23):
            ts = datetime(2026, 1, 1, hour, tzinfo=UTC) + timedelta(days=day)
            item = next(filter(None, map(sim.reading_at, steps(ts, ts + timedelta(hours=1)))))
            assert dec(item["consumption"]) >= last
            last = dec(item["consumption"])


def test_household_load_is_realistic(sim: SimHomeMini) -> None:
    day = [sim.reading_at(ts) for ts in steps(T0.replace(hour=0), T0.replace(hour=0) + 8640 * STEP)]
    present = [int(dec(r["demand"])) for r in day if r is not None]
    assert 0.003 < 1 - len(present) / len(day) < 0.02
    night, evening = present[3 * 360 : 4 * 360], present[19 * 360 : 20 * 360]
    assert min(present) > 100 and sum(night) / len(night) < 260
    assert sum(evening) / len(evening) > sum(night) / len(night) + 150
    assert sum(w > 2500 for w in present) >= 30  # kettle runs of ~3 min
    assert max(present) < 12000


def test_reading_at_is_a_pure_function_of_seed_and_ts(sim: SimHomeMini) -> None:
    other, different = FaultySim(seed=1), FaultySim(seed=2)
    sample = list(steps(T0, T0 + timedelta(minutes=30)))
    sim.freeze()
    sim.late_uploads = True
    assert [sim.reading_at(t) for t in sample] == [other.reading_at(t) for t in sample]
    assert [sim.reading_at(t) for t in sample] != [different.reading_at(t) for t in sample]
    assert sim.reading_at(T0 + timedelta(seconds=5)) is None
    with pytest.raises(ValueError):
        sim.reading_at(T0.replace(tzinfo=None))


def test_latest_reading_with_only_the_device_id(authed: Client, sim: SimHomeMini) -> None:
    resp = authed.telemetry()
    (item,) = resp.json()["data"]["smartMeterTelemetry"]
    t = T0 - STEP
    while sim.reading_at(t) is None or sim.available_at(t) > T0:
        t -= STEP
    assert item == sim.reading_at(t)


def test_only_uploaded_readings_are_served(authed: Client, sim: SimHomeMini) -> None:
    got = authed.readings(T0 - timedelta(minutes=5), T0 + timedelta(minutes=5))
    served = {item["readAt"] for item in got}
    for ts in steps(T0 - timedelta(minutes=5), T0 + timedelta(minutes=5)):
        item = sim.reading_at(ts)
        visible = item is not None and sim.available_at(ts) <= T0
        assert (ts.isoformat() in served) == visible
        if item is not None:
            assert timedelta(seconds=10) <= sim.available_at(ts) - ts <= timedelta(seconds=150)
    assert max(served) < T0.isoformat()


@pytest.mark.parametrize("grouping", [g for g in GROUPINGS if g != "TEN_SECONDS"])
def test_groupings_sum_deltas_average_demand_and_keep_the_last_register(
    authed: Client, clock: Clock, grouping: str
) -> None:
    clock.advance(minutes=10)
    start, end = T0 - timedelta(hours=2), T0
    size = GROUPINGS[grouping]
    tens = authed.readings(start, end)
    groups = authed.readings(start, end, grouping)
    buckets = {datetime.fromisoformat(r["readAt"]).timestamp() // size for r in tens}
    assert len(groups) == len(buckets) >= 7200 // size - 1
    for group in groups:
        at = datetime.fromisoformat(group["readAt"])
        assert at.timestamp() % size == 0
        members = [
            r for r in tens if at <= datetime.fromisoformat(r["readAt"]) < at + size * STEP / 10
        ]
        assert members
        assert Decimal(group["consumptionDelta"]) == sum(
            Decimal(r["consumptionDelta"]) for r in members
        )
        mean = sum((Decimal(r["demand"]) for r in members), Decimal(0)) / len(members)
        assert Decimal(group["demand"]) == mean.quantize(Decimal("0.1"))
        assert group["consumption"] == members[-1]["consumption"]
        assert Decimal(group["costDelta"]) == Decimal(group["consumptionDelta"]) * Decimal("0.0245")


def test_range_argument_errors(authed: Client, sim: SimHomeMini) -> None:
    now = T0.isoformat()
    hour_ago = (T0 - timedelta(hours=1)).isoformat()
    assert codes(authed.telemetry(start=hour_ago)) == ["KT-GB-4040"]
    assert codes(authed.telemetry(start=hour_ago, end=now)) == ["KT-GB-4040"]
    assert codes(authed.telemetry(start=now, end=now, grouping="HOURLY")) == ["KT-GB-4041"]
    assert codes(authed.telemetry(start=now, end=hour_ago, grouping="HOURLY")) == ["KT-GB-4041"]
    resp = authed.telemetry(deviceId="12-34-5A-FF-FF-6B-C7-89")
    assert codes(resp) == ["KT-GB-4050"]
    assert resp.json()["errors"][0]["message"] == "Smart meter not found."
    bad = authed.telemetry(start=hour_ago, end=now, grouping="DAILY")
    assert bad.status_code == 400 and bad.json()["errors"]


def test_retention_limit_is_kt_gb_4051(authed: Client, sim: SimHomeMini) -> None:
    default = authed.telemetry(
        start=(T0 - timedelta(days=31)).isoformat(),
        end=(T0 - timedelta(days=30, hours=23)).isoformat(),
        grouping="TEN_SECONDS",
    )
    assert codes(default) == ["KT-GB-4051"]
    sim.retention = timedelta(hours=12)
    old = authed.telemetry(
        start=(T0 - timedelta(hours=13)).isoformat(), end=T0.isoformat(), grouping="HOURLY"
    )
    assert codes(old) == ["KT-GB-4051"]
    assert old.json()["errors"][0]["message"] == "The start of the range is too far in the past."
    assert authed.readings(T0 - timedelta(hours=11), T0, "HOURLY")


# ------------------------------------------------------------------ faults


def test_late_uploads_arrive_three_to_four_minutes_late(
    authed: Client, sim: SimHomeMini, clock: Clock
) -> None:
    burst = next(t for t in steps(T0 + timedelta(minutes=10), T0 + timedelta(minutes=12))
                 if sim.reading_at(t) is not None)  # fmt: skip
    assert sim.available_at(burst) - burst <= timedelta(seconds=150)
    sim.late_uploads = True
    late = sim.available_at(burst) - burst
    assert timedelta(minutes=3) <= late <= timedelta(minutes=4)
    clock.now = burst + timedelta(seconds=170)
    got = authed.readings(burst - timedelta(minutes=1), burst + timedelta(minutes=1))
    assert burst.isoformat() not in {r["readAt"] for r in got}
    assert any(r["readAt"] < burst.isoformat() for r in got)  # outside the burst: on time
    clock.now = burst + late
    got = authed.readings(burst - timedelta(minutes=1), burst + timedelta(minutes=1))
    assert burst.isoformat() in {r["readAt"] for r in got}


def test_frozen_device_serves_nothing_new_and_loses_the_frozen_span(
    authed: Client, sim: SimHomeMini, clock: Clock
) -> None:
    sim.freeze()
    clock.advance(minutes=30)
    got = authed.readings(T0 - timedelta(minutes=10), clock.now)
    assert got and max(r["readAt"] for r in got) < T0.isoformat()
    (latest,) = authed.telemetry().json()["data"]["smartMeterTelemetry"]
    assert latest["readAt"] < T0.isoformat()
    thawed = clock.now
    sim.unfreeze()
    clock.advance(minutes=30)
    authed.login()
    got = authed.readings(T0 - timedelta(minutes=10), clock.now)
    read_at = [r["readAt"] for r in got]
    assert not [t for t in read_at if T0.isoformat() <= t < thawed.isoformat()]
    assert [t for t in read_at if t >= thawed.isoformat()]


def test_rate_limit_after_n_calls_in_a_rolling_hour(clock: Clock) -> None:
    sim = FaultySim(clock=clock, rate_limit_per_hour=5)
    with SimServer(sim) as server:
        client = Client(server.url)
        client.login()
        for _ in range(4):
            clock.advance(minutes=1)
            assert codes(client.telemetry()) == []
        assert sim.rate_limited_answers == 0
        resp = client.telemetry()
        assert resp.status_code == 200
        assert codes(resp) == ["KT-GB-4042"]
        assert resp.json()["errors"][0]["message"] == "Too many requests."
        assert codes(client.post(TOKEN_Q, {"input": {"APIKey": DEFAULT_API_KEY}})) == ["KT-CT-1199"]
        assert sim.rate_limited_answers == 2
        clock.advance(minutes=60)
        client.login()
        assert codes(client.telemetry()) == []
        ops = [op for _, op in sim.calls]
        assert ops == ["token"] + ["telemetry"] * 5 + ["token", "token", "telemetry"]
        client.http.close()


def test_rate_limited_switch(authed: Client, sim: SimHomeMini) -> None:
    sim.rate_limited = True
    assert codes(authed.telemetry()) == ["KT-GB-4042"]
    assert codes(authed.post(ACCOUNT_Q, {"accountNumber": DEFAULT_ACCOUNT})) == ["KT-CT-1199"]
    sim.rate_limited = False
    assert codes(authed.telemetry()) == []
    assert sim.rate_limited_answers == 2


def test_service_errors_alternate_502_503_and_kt_gb_4039(authed: Client, sim: SimHomeMini) -> None:
    sim.service_errors = 4
    first, second, third = authed.telemetry(), authed.telemetry(), authed.telemetry()
    assert first.status_code == 502 and first.headers["Content-Type"] == "text/html"
    assert "<html>" in first.text
    assert second.status_code == 503
    assert third.status_code == 200 and codes(third) == ["KT-GB-4039"]
    assert authed.post(TOKEN_Q, {"input": {"APIKey": DEFAULT_API_KEY}}).status_code == 502
    assert sim.service_errors == 0
    assert codes(authed.telemetry()) == []


def test_legacy_schema_rejects_the_newer_fields_with_http_400(
    authed: Client, sim: SimHomeMini
) -> None:
    sim.legacy_schema = True
    resp = authed.telemetry()
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["message"] == (
        'Cannot query field "costDeltaWithTax" on type "SmartMeterTelemetryType".'
    )
    assert "data" not in resp.json()
    old = authed.telemetry("readAt consumption consumptionDelta demand costDelta")
    assert old.status_code == 200 and len(old.json()["data"]["smartMeterTelemetry"]) == 1


@pytest.mark.parametrize(
    "query",
    [
        'mutation { obtainKrakenToken(input: {APIKey: "KEY"}) { token } }'.replace(
            "KEY", DEFAULT_API_KEY
        ),
        telemetry_query().replace("deviceId: $deviceId", f'deviceId: "{DEFAULT_DEVICE_ID}"'),
        ACCOUNT_Q.replace("$accountNumber)", f'"{DEFAULT_ACCOUNT}")'),
    ],
)
def test_secrets_and_ids_written_into_the_query_are_refused(authed: Client, query: str) -> None:
    resp = authed.post(query, {"deviceId": DEFAULT_DEVICE_ID, "accountNumber": DEFAULT_ACCOUNT})
    assert codes(resp) == ["SIM-LITERAL-SECRET"]
    assert DEFAULT_API_KEY not in resp.text


def test_a_token_written_into_the_query_is_refused(authed: Client) -> None:
    query = f"# token {authed.token}\n{telemetry_query()}"
    assert codes(authed.post(query, {"deviceId": DEFAULT_DEVICE_ID})) == ["SIM-LITERAL-SECRET"]


# ------------------------------------------------------------------ the server


def test_concurrent_requests_and_call_log(authed: Client, server: SimServer) -> None:
    results: list[int] = []

    def work() -> None:
        with requests.Session() as http:
            for _ in range(5):
                resp = http.post(
                    server.url,
                    json={
                        "query": telemetry_query(),
                        "variables": {"deviceId": DEFAULT_DEVICE_ID},
                    },
                    headers={"Authorization": authed.token or ""},
                )
                results.append(resp.status_code if not codes(resp) else -1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 40
    assert len(server.sim.calls) == 41
    assert all(at == T0 for at, _ in server.sim.calls)


def test_no_request_lines_on_stderr_and_stop_closes_kept_alive_connections(
    capfd: pytest.CaptureFixture[str], sim: SimHomeMini
) -> None:
    server = SimServer(sim).start()
    client = Client(server.url)
    client.login()
    client.post("{ viewer { id } }")
    client.http.get(server.url)
    server.stop()
    assert capfd.readouterr().err == ""
    with pytest.raises(requests.ConnectionError):
        client.telemetry()
    assert [op for _, op in sim.calls] == ["token", "other", "other"]
    client.http.close()


def test_loopback_only() -> None:
    with pytest.raises(ValueError):
        SimServer(host="0.0.0.0")


def test_python_m_octomon_sim_serves_until_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "octomon.sim", "--port", "0", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/v1/graphql/", first)
        assert url, first
        banner = "".join(proc.stdout.readline() for _ in range(4))
        assert f"OCTOPUS_API_KEY={DEFAULT_API_KEY}" in banner
        assert f"OCTOPUS_ACCOUNT_NUMBER={DEFAULT_ACCOUNT}" in banner
        client = Client(url.group())
        assert client.login()["token"]
        client.http.close()
        proc.send_signal(2)  # SIGINT, as Ctrl-C
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in err


def test_importing_the_sim_pulls_in_no_heavy_library() -> None:
    code = (
        "import sys, octomon.sim; "
        "print([m for m in ('requests', 'influxdb_client', 'typer', 'rich') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
