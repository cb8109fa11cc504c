"""The Kraken client's error mapping, token lifecycle and budget use, with `responses`.

Payloads are shaped like the real API: HTTP 200 with ``errors[]`` and
``extensions.errorCode``, numbers as decimal strings, ``readAt`` with an offset.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
import responses

from octomon import redact
from octomon.errors import (
    ApiError,
    AuthError,
    BudgetExhausted,
    NoDevice,
    OctopusUnavailable,
    RangeTooOld,
    RateLimited,
    TokenExpired,
)
from octomon.octopus.budget import Budget
from octomon.octopus.graphql import MAX_WINDOW, OctopusClient
from tests.helpers.clock import ManualClock as Clock

URL = "https://api.octopus.test/v1/graphql/"
KEY = "sk_live_" + "k3y" * 8
ACCOUNT = "A-1234ABCD"
DEVICE = "12-34-5A-FF-FF-6B-C7-89"
T0 = datetime(2026, 11, 27, 14, 0, 0, tzinfo=timezone.utc)


# --- payloads, as the real API sends them ----------------------------------------------------


def token_body(n: int = 1, issued: datetime = T0, *, refresh: str | None = None) -> dict[str, Any]:
    iat = int(issued.timestamp())
    return {
        "data": {
            "obtainKrakenToken": {
                "token": f"eyJhbGciOiJIUzI1NiJ9.token-{n}.signature-{n}",
                "refreshToken": refresh or f"refresh-token-{n}-0123456789abcdef",
                "refreshExpiresIn": iat + 7 * 86400,
                "payload": {"sub": "kraken|account-user:1", "exp": iat + 3600, "iat": iat},
            }
        }
    }


def error_body(code: str | None, message: str, field: str | None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": message,
        "locations": [{"line": 3, "column": 3}],
        "extensions": {
            "errorType": "VALIDATION",
            "errorCode": code,
            "errorDescription": message,
            "errorClass": "VALIDATION",
        },
    }
    if field:
        error["path"] = [field]
    return {"errors": [error], "data": {field: None} if field else None}


def item(ts: datetime, demand: str = "624.0") -> dict[str, Any]:
    return {
        "readAt": ts.astimezone(timezone(timedelta(hours=1))).isoformat(),
        "consumption": "5038414.5",
        "consumptionDelta": "0E+1",
        "demand": demand,
        "costDelta": "0.0",
        "costDeltaWithTax": None,
        "export": "",
    }


def telemetry_body(*times: datetime) -> dict[str, Any]:
    return {"data": {"smartMeterTelemetry": [item(t) for t in times]}}


def devices_body(meters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "data": {
            "account": {
                "electricityAgreements": [
                    {"meterPoint": {"mpan": "1900000000000", "meters": meters}}
                ]
            }
        }
    }


def add(body: Any, status: int = 200) -> None:
    responses.add(responses.POST, URL, json=body, status=status)


def sent(i: int) -> dict[str, Any]:
    body = responses.calls[i].request.body
    assert body is not None
    result: dict[str, Any] = json.loads(body)
    return result


def operation(i: int) -> str:
    return sent(i)["query"].split("(")[0].split()[-1]


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _mock() -> Iterator[None]:
    responses.start()
    try:
        yield
    finally:
        responses.stop()
        responses.reset()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def budget() -> Budget:
    return Budget(None, 100)


def make(clock: Clock, budget: Budget, **kwargs: Any) -> OctopusClient:
    params: dict[str, Any] = {
        "api_key": KEY,
        "account_number": ACCOUNT,
        "api_url": URL,
        "budget": budget,
        "clock": clock,
        "device_id": DEVICE,
    }
    params.update(kwargs)
    return OctopusClient(**params)


@pytest.fixture
def client(clock: Clock, budget: Budget) -> Iterator[OctopusClient]:
    c = make(clock, budget)
    yield c
    c.close()


# --- the happy path, and how requests are sent -----------------------------------------------


def test_telemetry_sends_variables_only_and_parses_decimal_strings(
    client: OctopusClient, budget: Budget
) -> None:
    add(token_body())
    add(telemetry_body(T0 - timedelta(seconds=10), T0 - timedelta(seconds=20)))
    readings = client.telemetry(T0 - timedelta(minutes=5), T0)

    assert [r.read_at for r in readings] == [T0 - timedelta(seconds=20), T0 - timedelta(seconds=10)]
    r = readings[0]
    assert (r.device_id, r.demand, r.consumption, r.consumption_delta) == (
        DEVICE,
        0.624,
        5038.4145,
        0.0,
    )
    assert r.cost_delta_with_tax is None and r.export is None
    token_req, tele_req = sent(0), sent(1)
    assert token_req["variables"] == {"input": {"APIKey": KEY}}
    assert tele_req["variables"] == {
        "deviceId": DEVICE,
        "start": "2026-11-27T13:55:00+00:00",
        "end": "2026-11-27T14:00:00+00:00",
        "grouping": "TEN_SECONDS",
    }
    token = token_body()["data"]["obtainKrakenToken"]["token"]
    for i in range(2):
        query = sent(i)["query"]
        for secret in (KEY, token, DEVICE, ACCOUNT):
            assert secret not in query
        assert "Authorization" not in responses.calls[0].request.headers
    assert responses.calls[1].request.headers["Authorization"] == token  # raw, no "Bearer"
    for call in responses.calls:
        kwargs = call.request.req_kwargs  # type: ignore[attr-defined]
        assert kwargs["verify"] not in (False, None)
        assert 0 < kwargs["timeout"] <= 10
    assert budget.calls_last_hour(T0) == 2  # the token call is in the ledger too


def test_timeout_is_capped_at_ten_seconds(clock: Clock, budget: Budget) -> None:
    add(token_body())
    add(telemetry_body())
    c = make(clock, budget, timeout=60)
    c.latest()
    assert responses.calls[0].request.req_kwargs["timeout"] == 10  # type: ignore[attr-defined]


def test_latest_sends_the_device_id_only(client: OctopusClient) -> None:
    add(token_body())
    add(telemetry_body(T0))
    reading = client.latest()
    assert reading is not None and reading.read_at == T0
    assert sent(1)["variables"] == {"deviceId": DEVICE}
    add(telemetry_body())
    assert client.latest() is None


def test_items_without_read_at_or_numbers_are_dropped_and_counted(client: OctopusClient) -> None:
    add(token_body())
    body = telemetry_body(T0 - timedelta(seconds=10))
    body["data"]["smartMeterTelemetry"] += [
        {"readAt": None, "demand": "1.0"},
        {"readAt": T0.isoformat(), "demand": "", "consumption": None},
        "not an object",
    ]
    add(body)
    assert len(client.telemetry(T0 - timedelta(minutes=1), T0)) == 1
    assert client.dropped == 3


def test_null_telemetry_is_an_empty_list(client: OctopusClient) -> None:
    add(token_body())
    add({"data": {"smartMeterTelemetry": None}})
    assert client.telemetry(T0 - timedelta(minutes=1), T0) == []


def test_long_window_is_split_into_six_hour_calls_oldest_first(client: OctopusClient) -> None:
    start = T0 - timedelta(hours=13)
    add(token_body())
    # Each answer overlaps its neighbour by one reading: it must come back once.
    add(telemetry_body(start, start + timedelta(hours=6)))
    add(telemetry_body(start + timedelta(hours=6), start + timedelta(hours=7)))
    add(telemetry_body(T0 - timedelta(seconds=10)))
    readings = client.telemetry(start, T0)
    windows = [(sent(i)["variables"]["start"], sent(i)["variables"]["end"]) for i in (1, 2, 3)]
    assert windows == [
        ("2026-11-27T01:00:00+00:00", "2026-11-27T07:00:00+00:00"),
        ("2026-11-27T07:00:00+00:00", "2026-11-27T13:00:00+00:00"),
        ("2026-11-27T13:00:00+00:00", "2026-11-27T14:00:00+00:00"),
    ]
    assert len(responses.calls) == 4
    assert [r.read_at for r in readings] == [
        start,
        start + timedelta(hours=6),
        start + timedelta(hours=7),
        T0 - timedelta(seconds=10),
    ]
    assert timedelta(hours=6) == MAX_WINDOW


def test_empty_or_reversed_window_makes_no_call(client: OctopusClient) -> None:
    assert client.telemetry(T0, T0) == []
    assert client.telemetry(T0, T0 - timedelta(hours=1)) == []
    assert len(responses.calls) == 0
    with pytest.raises(ValueError):
        client.telemetry(T0.replace(tzinfo=None), T0)


# --- the budget is consulted before every request --------------------------------------------


def test_budget_exhausted_sends_nothing(clock: Clock) -> None:
    budget = Budget(None, 2)
    budget.reserve(T0 - timedelta(minutes=10))
    budget.reserve(T0 - timedelta(minutes=5))
    add(token_body())
    c = make(clock, budget)
    with pytest.raises(BudgetExhausted) as info:
        c.latest()
    assert len(responses.calls) == 0
    assert info.value.retry_in == pytest.approx(50 * 60)


def test_budget_exhausted_between_token_and_telemetry(clock: Clock) -> None:
    budget = Budget(None, 1)
    add(token_body())
    add(telemetry_body(T0))
    c = make(clock, budget)
    with pytest.raises(BudgetExhausted):
        c.latest()
    assert len(responses.calls) == 1  # the token call only
    assert operation(0) == "ObtainToken"


# --- one test per error code -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("KT-CT-1111", "Unauthorized."),
        ("KT-CT-1112", "'Authorization' header not provided."),
        ("KT-CT-1134", "Invalid data."),
        ("KT-CT-1135", "Invalid data."),
        ("KT-CT-1143", "Unauthorized."),
    ],
)
def test_auth_codes_on_telemetry_are_auth_errors(
    client: OctopusClient, code: str, message: str
) -> None:
    add(token_body(1))
    add(error_body(code, message, "smartMeterTelemetry"))
    add(token_body(2))
    add(error_body(code, message, "smartMeterTelemetry"))
    with pytest.raises(AuthError) as info:
        client.latest()
    assert "authentication failed" in info.value.message.lower()
    assert code in info.value.message
    assert info.value.hint is not None and "OCTOPUS_API_KEY" in info.value.hint
    # One new token from the API key was tried before giving up; then no more requests.
    assert [operation(i) for i in range(4)] == ["ObtainToken", "Latest", "ObtainToken", "Latest"]
    assert sent(2)["variables"] == {"input": {"APIKey": KEY}}
    assert len(responses.calls) == 4


def test_a_refused_token_is_replaced_once_from_the_api_key(clock: Clock, budget: Budget) -> None:
    c = make(
        clock,
        budget,
        refresh_token="saved-refresh-token-0123456789",
        refresh_expires_at=T0 + timedelta(days=3),
    )
    add(token_body(1))
    add(error_body("KT-CT-1111", "Unauthorized.", "smartMeterTelemetry"))
    add(token_body(2))
    add(telemetry_body(T0))
    assert c.latest() is not None
    assert sent(0)["variables"]["input"].keys() == {"refreshToken"}
    assert sent(2)["variables"] == {"input": {"APIKey": KEY}}  # not the refresh token again


def test_bad_api_key_is_an_auth_error_without_the_key(client: OctopusClient) -> None:
    add(error_body("KT-CT-1139", "Authentication failed.", "obtainKrakenToken"))
    with pytest.raises(AuthError) as info:
        client.latest()
    text = f"{info.value.message} {info.value.hint}"
    assert "authentication failed" in text.lower()
    assert KEY not in text
    assert len(responses.calls) == 1  # no retry in a tight loop


@pytest.mark.parametrize(
    ("code", "field"),
    [("KT-GB-4042", "smartMeterTelemetry"), ("KT-CT-1199", "smartMeterTelemetry")],
)
def test_rate_limit_codes_start_the_backoff(
    client: OctopusClient, budget: Budget, clock: Clock, code: str, field: str
) -> None:
    add(token_body())
    add(error_body(code, "Too many requests.", field))
    with pytest.raises(RateLimited) as info:
        client.latest()
    assert info.value.retry_in == 300
    assert budget.backoff_remaining(clock()) == 300
    assert budget.rate_limited_since() == T0
    # The next request is refused by the ledger: nothing is sent.
    clock.now += timedelta(minutes=1)
    with pytest.raises(RateLimited):
        client.latest()
    assert len(responses.calls) == 2
    # After the backoff, a success clears it.
    clock.now = T0 + timedelta(seconds=300)
    add(telemetry_body(T0))
    assert client.latest() is not None
    assert budget.rate_limited_since() is None


def test_rate_limited_token_call_is_rate_limited(client: OctopusClient, budget: Budget) -> None:
    add(error_body("KT-CT-1199", "Too many requests.", "obtainKrakenToken"))
    with pytest.raises(RateLimited):
        client.latest()
    assert budget.backoff_remaining(T0) == 300


def test_rate_limit_backoff_doubles_across_answers(
    client: OctopusClient, budget: Budget, clock: Clock
) -> None:
    add(token_body())
    add(error_body("KT-GB-4042", "Too many requests.", "smartMeterTelemetry"))
    waits = []
    for _ in range(4):
        with pytest.raises(RateLimited) as info:
            client.latest()
        waits.append(info.value.retry_in)
        clock.now += timedelta(seconds=info.value.retry_in)
    assert waits == [300, 600, 1200, 1800]


@pytest.mark.parametrize(
    ("code", "message", "exc"),
    [
        ("KT-GB-4039", "Unable to query telemetry.", OctopusUnavailable),
        ("KT-GB-4043", "Network error.", OctopusUnavailable),
        ("KT-GB-4050", "Smart meter not found.", NoDevice),
        ("KT-GB-4056", "No Device Network (HAN) record found.", NoDevice),
        ("KT-GB-4051", "The start of the range is too far in the past.", RangeTooOld),
    ],
)
def test_telemetry_error_codes(
    client: OctopusClient, code: str, message: str, exc: type[Exception]
) -> None:
    add(token_body())
    add(error_body(code, message, "smartMeterTelemetry"))
    with pytest.raises(exc) as info:
        client.telemetry(T0 - timedelta(hours=1), T0)
    assert code in str(info.value)


def test_unknown_code_is_an_api_error_with_code_and_message(client: OctopusClient) -> None:
    add(token_body())
    add(error_body("KT-GB-4041", "The end of the range must be after its start.", "x"))
    with pytest.raises(ApiError) as info:
        client.telemetry(T0 - timedelta(hours=1), T0)
    assert info.value.code == "KT-GB-4041"
    assert info.value.api_message == "The end of the range must be after its start."


def test_wrong_account_is_an_api_error_naming_the_setting(clock: Clock, budget: Budget) -> None:
    add(token_body())
    add(error_body("KT-CT-4123", "Unauthorized.", "account"))
    c = make(clock, budget, device_id=None)
    with pytest.raises(ApiError) as info:
        c.device()
    assert info.value.hint is not None and "OCTOPUS_ACCOUNT_NUMBER" in info.value.hint
    assert "\n" not in info.value.message


def test_account_not_found_without_a_code(clock: Clock, budget: Budget) -> None:
    add(token_body())
    add(error_body(None, "Account not found.", "account"))
    c = make(clock, budget, device_id=None)
    with pytest.raises(ApiError) as info:
        c.device()
    assert info.value.hint is not None and "OCTOPUS_ACCOUNT_NUMBER" in info.value.hint
    add({"data": {"account": None}})
    with pytest.raises(ApiError) as info:
        c.device()
    assert info.value.hint is not None and "OCTOPUS_ACCOUNT_NUMBER" in info.value.hint


# --- transport failures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectionError(f"HTTPSConnectionPool(host='x'): Max retries exceeded: {URL}"),
        requests.ConnectTimeout(f"timed out: {URL}"),
        requests.ReadTimeout(f"read timed out: {URL}"),
        requests.exceptions.SSLError(f"certificate verify failed: {URL}"),
    ],
)
def test_transport_errors_are_unavailable_without_the_url(
    client: OctopusClient, failure: Exception
) -> None:
    responses.add(responses.POST, URL, body=failure)
    with pytest.raises(OctopusUnavailable) as info:
        client.latest()
    assert URL not in str(info.value)
    assert "/v1/graphql" not in f"{info.value.message} {info.value.hint}"
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (502, "<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
        (503, "<html>503 Service Temporarily Unavailable</html>", "text/html"),
        (504, "", "text/html"),
        (200, "<html>maintenance</html>", "text/html"),
        (200, '{"something": "else"}', "application/json"),
        (500, json.dumps(error_body(None, "Internal error", None)), "application/json"),
    ],
)
def test_5xx_and_non_json_are_unavailable(
    client: OctopusClient, status: int, body: str, content_type: str
) -> None:
    add(token_body())
    responses.add(responses.POST, URL, body=body, status=status, content_type=content_type)
    with pytest.raises(OctopusUnavailable):
        client.latest()


def test_5xx_with_a_known_code_is_mapped_by_code(client: OctopusClient) -> None:
    add(token_body())
    add(error_body("KT-GB-4042", "Too many requests.", "smartMeterTelemetry"), status=503)
    with pytest.raises(RateLimited):
        client.latest()


def test_other_http_status_without_errors_is_an_api_error(client: OctopusClient) -> None:
    add(token_body())
    responses.add(responses.POST, URL, body="Forbidden", status=403)
    with pytest.raises(ApiError) as info:
        client.latest()
    assert "403" in info.value.message


# --- the token lifecycle (SPEC §4.2) ---------------------------------------------------------


def test_expired_token_is_renewed_and_the_request_retried_once(client: OctopusClient) -> None:
    add(token_body(1))
    add(error_body("KT-CT-1124", "Signature of the JWT has expired.", "smartMeterTelemetry"))
    add(token_body(2, refresh="refresh-token-1-0123456789abcdef"))
    add(telemetry_body(T0))
    reading = client.latest()
    assert reading is not None
    assert [operation(i) for i in range(4)] == ["ObtainToken", "Latest", "ObtainToken", "Latest"]
    assert sent(2)["variables"] == {"input": {"refreshToken": "refresh-token-1-0123456789abcdef"}}
    assert responses.calls[3].request.headers["Authorization"].endswith("token-2.signature-2")


def test_a_second_expiry_is_an_error(client: OctopusClient) -> None:
    add(token_body(1))
    add(error_body("KT-CT-1120", "Token expired.", "smartMeterTelemetry"))
    add(token_body(2))
    add(error_body("KT-CT-1120", "Token expired.", "smartMeterTelemetry"))
    add(telemetry_body(T0))  # never reached
    with pytest.raises(TokenExpired):
        client.latest()
    assert len(responses.calls) == 4


def test_refused_refresh_token_falls_back_to_the_api_key(client: OctopusClient) -> None:
    add(token_body(1))
    add(error_body("KT-CT-1124", "Signature of the JWT has expired.", "smartMeterTelemetry"))
    add(error_body("KT-CT-1135", "Invalid data.", "obtainKrakenToken"))
    add(token_body(3))
    add(telemetry_body(T0))
    assert client.latest() is not None
    assert sent(2)["variables"]["input"].keys() == {"refreshToken"}
    assert sent(3)["variables"] == {"input": {"APIKey": KEY}}
    assert client.refresh_token == "refresh-token-3-0123456789abcdef"


def test_expired_refresh_token_is_not_tried(clock: Clock, budget: Budget) -> None:
    c = make(
        clock,
        budget,
        refresh_token="old-refresh-token-0123456789",
        refresh_expires_at=T0 - timedelta(minutes=1),
    )
    add(token_body(1))
    add(telemetry_body(T0))
    c.latest()
    assert sent(0)["variables"] == {"input": {"APIKey": KEY}}
    assert len(responses.calls) == 2


def test_a_persisted_refresh_token_saves_the_key(clock: Clock, budget: Budget) -> None:
    c = make(
        clock,
        budget,
        refresh_token="saved-refresh-token-0123456789",
        refresh_expires_at=T0 + timedelta(days=3),
    )
    add(token_body(1))
    add(telemetry_body(T0))
    c.latest()
    assert sent(0)["variables"] == {"input": {"refreshToken": "saved-refresh-token-0123456789"}}


def test_token_is_renewed_five_minutes_before_expiry(client: OctopusClient, clock: Clock) -> None:
    add(token_body(1))
    add(telemetry_body(T0))
    client.latest()
    assert client.token_expires_at == T0 + timedelta(hours=1)
    assert client.refresh_expires_at == T0 + timedelta(days=7)
    clock.now = T0 + timedelta(minutes=54, seconds=59)
    client.latest()
    ops = [operation(i) for i in range(len(responses.calls))]
    assert ops == ["ObtainToken", "Latest", "Latest"]
    clock.now = T0 + timedelta(minutes=55)
    # `responses` keeps only the last registered answer once the others are used: swap it.
    responses.replace(responses.POST, URL, json=token_body(2, clock.now))
    add(telemetry_body(T0))
    client.latest()
    assert operation(3) == "ObtainToken"
    assert sent(3)["variables"] == {"input": {"refreshToken": "refresh-token-1-0123456789abcdef"}}
    assert client.token_expires_at == clock.now + timedelta(hours=1)


def test_tokens_are_registered_for_scrubbing(client: OctopusClient) -> None:
    body = token_body(7)
    add(body)
    add(telemetry_body(T0))
    client.latest()
    token = body["data"]["obtainKrakenToken"]["token"]
    refresh = body["data"]["obtainKrakenToken"]["refreshToken"]
    assert token not in redact.scrub(f"x {token} y")
    assert refresh not in redact.scrub(f"x {refresh} y")
    assert KEY not in redact.scrub(KEY)


def test_payload_as_a_json_string_and_refresh_expiry_as_a_duration(
    client: OctopusClient,
) -> None:
    body = token_body(1)
    result = body["data"]["obtainKrakenToken"]
    result["payload"] = json.dumps(result["payload"])
    result["refreshExpiresIn"] = 604800
    add(body)
    add(telemetry_body(T0))
    client.latest()
    assert client.token_expires_at == T0 + timedelta(hours=1)
    assert client.refresh_expires_at == T0 + timedelta(days=7)


def test_debug_log_never_holds_the_key_or_tokens(
    client: OctopusClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = token_body(1)
    add(body)
    add(error_body("KT-CT-1124", "Signature of the JWT has expired.", "smartMeterTelemetry"))
    add(token_body(2))
    add(telemetry_body(T0))
    with caplog.at_level(logging.DEBUG):
        client.latest()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "ObtainToken" in text and "Latest" in text  # the request lines are there
    for secret in (KEY, "token-1.signature-1", "token-2.signature-2", "refresh-token-1"):
        assert secret not in text


# --- the unknown-field fallback --------------------------------------------------------------


def test_unknown_fields_are_dropped_once_and_remembered(client: OctopusClient) -> None:
    add(token_body())
    message = 'Cannot query field "costDeltaWithTax" on type "SmartMeterTelemetryType".'
    add(error_body(None, message, None), status=400)
    add(telemetry_body(T0))
    add(telemetry_body(T0))
    client.telemetry(T0 - timedelta(minutes=5), T0)
    client.latest()
    queries = [sent(i)["query"] for i in range(1, 4)]
    assert "costDeltaWithTax" in queries[0] and "export" in queries[0]
    for q in queries[1:]:
        assert "costDeltaWithTax" not in q and "export" not in q
    assert len(responses.calls) == 4


def test_other_validation_errors_are_not_retried(client: OctopusClient) -> None:
    add(token_body())
    add(error_body(None, 'Cannot query field "bogus".', None), status=400)
    with pytest.raises(ApiError):
        client.latest()
    assert len(responses.calls) == 2


# --- device discovery ------------------------------------------------------------------------


def test_discovery_prefers_the_esme_and_lists_the_others(clock: Clock, budget: Budget) -> None:
    add(token_body())
    add(
        devices_body(
            [
                {
                    "serialNumber": "21E1",
                    "smartImportElectricityMeter": {"deviceId": "AA-AA"},
                    "smartDevices": [
                        {"deviceId": "IHD-1", "type": "IHD"},
                        {"deviceId": DEVICE, "type": "ESME"},
                        {"deviceId": "CAD-1", "type": "CAD"},
                    ],
                }
            ]
        )
    )
    c = make(clock, budget, device_id=None)
    assert c.device() == DEVICE
    assert c.other_devices == ["AA-AA", "IHD-1", "CAD-1"]
    assert sent(1)["variables"] == {"accountNumber": ACCOUNT}
    assert ACCOUNT not in sent(1)["query"]
    assert c.device() == DEVICE  # remembered: no second call
    assert len(responses.calls) == 2


def test_discovery_falls_back_to_the_import_meter(clock: Clock, budget: Budget) -> None:
    add(token_body())
    add(
        devices_body(
            [
                {
                    "serialNumber": "21E1",
                    "smartImportElectricityMeter": {"deviceId": DEVICE},
                    "smartDevices": [{"deviceId": "IHD-1", "type": "IHD"}],
                }
            ]
        )
    )
    assert make(clock, budget, device_id=None).device() == DEVICE


@pytest.mark.parametrize(
    "meters",
    [
        [],
        [{"serialNumber": "1", "smartImportElectricityMeter": None, "smartDevices": []}],
        [{"serialNumber": "1", "smartImportElectricityMeter": {"deviceId": None}}],
    ],
)
def test_no_device_says_what_to_check(
    clock: Clock, budget: Budget, meters: list[dict[str, Any]]
) -> None:
    add(token_body())
    add(devices_body(meters))
    with pytest.raises(NoDevice) as info:
        make(clock, budget, device_id=None).device()
    assert info.value.message.startswith("No smart devices found")
    assert info.value.hint is not None and "Home Mini" in info.value.hint


def test_configured_device_id_skips_discovery(client: OctopusClient) -> None:
    assert client.device() == DEVICE
    assert len(responses.calls) == 0


def test_importing_the_client_does_not_import_requests() -> None:
    """`octomon --help` and `status` may import this module: it must stay cheap."""
    import subprocess
    import sys

    code = "import sys, octomon.octopus.graphql; print('requests' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
