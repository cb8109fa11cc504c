"""The REST client's answers mapped to octomon's errors, pagination and the ledger (`responses`).

Bodies are shaped like the real API's (OCTOPUS_REST.md §0, §3, §5): ``{count, next,
previous, results}`` lists with absolute ``next`` URLs, ``{"detail": ...}`` errors, and the
CloudFront HTML page a 403 sometimes is.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from octomon.errors import (
    ApiError,
    AuthError,
    BudgetExhausted,
    NotFound,
    OctopusError,
    OctopusUnavailable,
    RateLimited,
)
from octomon.octopus.budget import Budget
from octomon.octopus.rest import RestClient
from tests.helpers.clock import ManualClock

BASE = "https://api.octopus.test/v1/"
KEY = "sk_live_" + "r3st" * 6
T0 = datetime(2026, 11, 27, 14, 7, tzinfo=timezone.utc)
RATES = "products/AGILE-24-10-01/electricity-tariffs/E-1R-AGILE-24-10-01-C/standard-unit-rates/"
CLOUDFRONT = (
    "<!DOCTYPE HTML PUBLIC><HTML><HEAD><TITLE>ERROR: The request could not be satisfied"
    "</TITLE></HEAD><BODY><H1>403 ERROR</H1></BODY></HTML>"
)


def rate(n: int) -> dict[str, object]:
    return {
        "value_exc_vat": 17.42 + n,
        "value_inc_vat": 18.291 + n,
        "valid_from": f"2024-05-07T{n:02d}:00:00Z",
        "valid_to": f"2024-05-07T{n:02d}:30:00Z",
        "payment_method": None,
    }


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def budget() -> Budget:
    return Budget(None, 75)


@pytest.fixture
def client(budget: Budget, clock: ManualClock) -> Iterator[RestClient]:
    c = RestClient(api_key=KEY, base_url=BASE, budget=budget, clock=clock)
    yield c
    c.close()


@responses.activate
def test_get_sends_basic_auth_with_the_key_and_an_empty_password(client: RestClient) -> None:
    responses.get(BASE + "accounts/A-1234ABCD/", json={"number": "A-1234ABCD", "properties": []})
    body = client.account("A-1234ABCD")
    assert body["number"] == "A-1234ABCD"
    sent = responses.calls[0].request.headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()


@responses.activate
def test_every_request_is_in_the_ledger(client: RestClient, budget: Budget) -> None:
    responses.get(BASE + "accounts/A-1234ABCD/", json={"number": "A-1234ABCD"})
    client.account("A-1234ABCD")
    client.account("A-1234ABCD")
    assert budget.calls_last_hour(T0) == 2
    assert client.calls == 2


@responses.activate
def test_no_request_is_sent_when_the_budget_is_used_up(clock: ManualClock) -> None:
    budget = Budget(None, 1)
    budget.reserve(T0)
    client = RestClient(api_key=KEY, base_url=BASE, budget=budget, clock=clock)
    with pytest.raises(BudgetExhausted):
        client.get("accounts/A-1234ABCD/")
    assert len(responses.calls) == 0


@responses.activate
def test_get_all_follows_next_to_the_end_resending_its_own_parameters(
    client: RestClient, budget: Budget
) -> None:
    pages = {
        None: ([rate(0), rate(1)], BASE + RATES + "?page=2"),
        "2": ([rate(2), rate(3)], BASE + RATES + "?page=3"),
        "3": ([rate(4)], None),
    }

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:

        query = parse_qs(urlsplit(request.url or "").query)
        assert query["period_from"] == ["2024-05-07T00:00:00Z"]
        results, nxt = pages[query.get("page", [None])[0]]
        return 200, {}, json.dumps({"count": 5, "next": nxt, "previous": None, "results": results})

    responses.add_callback(responses.GET, BASE + RATES, callback=answer)
    rows = client.get_all(RATES, {"period_from": "2024-05-07T00:00:00Z"})
    assert [r["valid_from"] for r in rows] == [rate(n)["valid_from"] for n in range(5)]
    assert len(responses.calls) == 3
    assert budget.calls_last_hour(T0) == 3


@responses.activate
def test_get_all_stops_when_next_repeats_a_page(client: RestClient) -> None:
    responses.get(
        BASE + RATES,
        json={"count": 9, "next": BASE + RATES + "?page=2", "previous": None, "results": []},
    )
    assert client.get_all(RATES) == []
    assert len(responses.calls) == 2


@responses.activate
@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_an_auth_error(client: RestClient, status: int) -> None:
    responses.get(BASE + "accounts/A-1234ABCD/", status=status, json={"detail": "Invalid API key."})
    with pytest.raises(AuthError) as err:
        client.account("A-1234ABCD")
    assert str(err.value) == f"the Octopus API refused the key (HTTP {status}: Invalid API key.)"
    assert "OCTOPUS_API_KEY" in (err.value.hint or "")
    assert KEY not in str(err.value)


@responses.activate
def test_permission_refused_points_at_the_account_number(client: RestClient) -> None:
    responses.get(
        BASE + "accounts/A-1234ABCD/",
        status=403,
        json={"detail": "You do not have permission to perform this action."},
    )
    with pytest.raises(AuthError) as err:
        client.account("A-1234ABCD")
    assert "OCTOPUS_ACCOUNT_NUMBER" in (err.value.hint or "")


@responses.activate
def test_the_cdn_html_403_is_unavailable_not_a_refused_key(client: RestClient) -> None:
    responses.get(BASE + RATES, status=403, body=CLOUDFRONT, content_type="text/html")
    with pytest.raises(OctopusUnavailable) as err:
        client.get_all(RATES)
    assert "403" in str(err.value) and "CDN" in str(err.value)


@responses.activate
def test_404_is_not_found(client: RestClient) -> None:
    responses.get(BASE + RATES, status=404, json={"detail": "Not found."})
    with pytest.raises(NotFound):
        client.get_all(RATES)


@responses.activate
def test_the_account_404_names_the_account(client: RestClient) -> None:
    responses.get(BASE + "accounts/A-1234ABCD/", status=404, json={"detail": "Not found."})
    with pytest.raises(NotFound) as err:
        client.account("A-1234ABCD")
    assert str(err.value) == "account A-1234ABCD was not found by the Octopus API"


@responses.activate
def test_429_backs_off_in_the_shared_ledger(client: RestClient, budget: Budget) -> None:
    responses.get(BASE + RATES, status=429, json={"detail": "Request was throttled."})
    with pytest.raises(RateLimited) as err:
        client.get(RATES)
    assert err.value.retry_in == 300
    assert budget.backoff_remaining(T0) == 300
    with pytest.raises(RateLimited):  # no request goes out while the backoff runs
        client.get(RATES)
    assert len(responses.calls) == 1


@responses.activate
def test_a_success_after_the_backoff_clears_it(
    client: RestClient, budget: Budget, clock: ManualClock
) -> None:
    responses.get(BASE + RATES, status=429, json={"detail": "Request was throttled."})
    with pytest.raises(RateLimited):
        client.get(RATES)
    responses.replace(responses.GET, BASE + RATES, json={"results": [], "next": None})
    clock.advance(minutes=6)
    client.get(RATES)
    assert budget.rate_limited_since() is None


@responses.activate
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_unavailable(client: RestClient, status: int) -> None:
    responses.get(BASE + RATES, status=status, body="<html>Bad Gateway</html>")
    with pytest.raises(OctopusUnavailable) as err:
        client.get(RATES)
    assert str(err.value) == f"the Octopus API answered HTTP {status}"


@responses.activate
def test_a_timeout_is_unavailable_and_the_client_caps_timeouts(budget: Budget) -> None:
    responses.get(BASE + RATES, body=requests.exceptions.ReadTimeout("read timed out"))
    client = RestClient(api_key=KEY, base_url=BASE, budget=budget, timeout=60)
    assert client.timeout == 10
    with pytest.raises(OctopusUnavailable) as err:
        client.get(RATES)
    assert str(err.value) == "the Octopus API (api.octopus.test) did not answer within 10 s"


@responses.activate
def test_a_connection_error_carries_no_url_or_key(client: RestClient) -> None:
    url = f"https://{KEY}:@api.octopus.test/v1/{RATES}"
    responses.get(BASE + RATES, body=requests.ConnectionError(f"Max retries exceeded: {url}"))
    with pytest.raises(OctopusUnavailable) as err:
        client.get(RATES)
    assert str(err.value) == "could not reach the Octopus API (api.octopus.test): connection failed"
    assert err.value.__cause__ is None and err.value.__suppress_context__


@responses.activate
def test_200_that_is_not_json_is_unavailable(client: RestClient) -> None:
    responses.get(BASE + RATES, body=CLOUDFRONT, content_type="text/html")
    with pytest.raises(OctopusUnavailable):
        client.get(RATES)


@responses.activate
def test_400_is_an_api_error_with_the_servers_detail(client: RestClient) -> None:
    path = "products/OE-FIX/electricity-tariffs/E-2R-OE-FIX-C/standard-unit-rates/"
    responses.get(BASE + path, status=400, json={"detail": "This tariff has no standard rate."})
    with pytest.raises(ApiError) as err:
        client.get(path)
    assert "HTTP 400" in str(err.value) and "no standard rate" in str(err.value)


@responses.activate
def test_debug_log_never_holds_the_key(
    client: RestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    responses.get(BASE + "accounts/A-1234ABCD/", status=401, json={"detail": "Invalid API key."})
    with pytest.raises(AuthError):
        client.account("A-1234ABCD")
    assert caplog.records and KEY not in caplog.text


@responses.activate
@pytest.mark.parametrize("status", [429, 503])
def test_graphql_and_rest_say_the_same_for_the_same_http_failure(
    budget: Budget, clock: ManualClock, status: int
) -> None:
    """One transport (octomon.octopus.http) under both clients: the same error, message
    and hint, and the same shared backoff."""
    from octomon.octopus.graphql import OctopusClient

    graphql_url = "https://api.octopus.test/v1/graphql/"
    responses.post(graphql_url, status=200, json={"data": {"obtainKrakenToken": {"token": "t"}}})
    responses.post(graphql_url, status=status, body="<html>busy</html>")
    responses.get(BASE + RATES, status=status, body="<html>busy</html>")
    gql = OctopusClient(
        api_key=KEY,
        account_number="A-1",
        api_url=graphql_url,
        budget=budget,
        clock=clock,
        device_id="00-11",
        gas_enabled=False,
    )
    rest = RestClient(api_key=KEY, base_url=BASE, budget=budget, clock=clock)
    errors = []
    for call in (gql.latest, lambda: rest.get(RATES)):
        with pytest.raises(OctopusError) as info:
            call()
        errors.append(info.value)
        clock.advance(301)  # past the first backoff
    gql.close()
    rest.close()
    first, second = errors
    assert type(first) is type(second)
    assert first.hint == second.hint
    if status == 429:
        assert isinstance(first, RateLimited) and isinstance(second, RateLimited)
        assert (first.retry_in, second.retry_in) == (300, 600)  # one backoff, doubled
        assert first.message == "the Octopus API rate limit was hit (HTTP 429); backing off 300 s"
    else:
        assert isinstance(first, OctopusUnavailable)
        assert first.message == second.message == "the Octopus API answered HTTP 503"
