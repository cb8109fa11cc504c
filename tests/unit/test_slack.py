"""The Slack notifier and the background Alerter, against a loopback webhook server.

Error mapping for failures a loopback server cannot produce (TLS, DNS, an exception whose
text carries the URL) uses ``responses``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
import requests
import responses

from octomon import redact
from octomon.alerts.blocks import build_payload
from octomon.alerts.policy import Alert, AlertPolicy, Level
from octomon.alerts.slack import Alerter, SendResult, SlackNotifier
from tests.helpers.services import free_port
from tests.helpers.slack_server import Answer, SlackWebhookServer, check_payload

SECRET = "Zq9SECRETpathPART7xW2"
NOW = datetime(2026, 11, 27, 14, 0, 10, tzinfo=timezone.utc)


def alert(title: str = "InfluxDB unreachable", **fields: str) -> Alert:
    return Alert(Level.WARNING, title, "Readings are cached.", "influxdb", fields, NOW, "influx")


@pytest.fixture
def server() -> Iterator[SlackWebhookServer]:
    with SlackWebhookServer() as s:
        yield s


# --- the payload ---------------------------------------------------------------------


def test_payload_has_blocks_and_a_plain_fallback() -> None:
    payload = build_payload(alert(error="connection refused"), "pi4")
    assert check_payload(payload) is None
    assert payload["text"] == (
        ":warning: InfluxDB unreachable [warning] on pi4: Readings are cached."
    )
    header, section, fields, context = payload["blocks"]
    assert header["text"]["text"] == ":warning: InfluxDB unreachable"
    assert section["text"]["text"] == "Readings are cached."
    assert [f["text"] for f in fields["fields"]] == [
        "*host*\npi4",
        "*component*\ninfluxdb",
        "*error*\nconnection refused",
    ]
    stamp = context["elements"][0]["text"]
    assert f"<!date^{int(NOW.timestamp())}^" in stamp and "|2026-11-27 14:00:10 UTC>" in stamp


def test_payload_emoji_per_level_and_recovery() -> None:
    levels = {}
    for level in Level:
        a = Alert(level, "t", "x", "c", {}, NOW, "k")
        levels[level] = build_payload(a, "h")["text"].split()[0]
    assert levels == {
        Level.INFO: ":information_source:",
        Level.WARNING: ":warning:",
        Level.ERROR: ":red_circle:",
    }
    recovered = Alert(
        Level.INFO, "InfluxDB restored", "", "influxdb", {}, NOW, "influx", recovery=True
    )
    assert build_payload(recovered, "h")["text"].startswith(":white_check_mark:")


def test_payload_escapes_mrkdwn_and_respects_slack_limits() -> None:
    many = {f"field {i}": "<!channel> & <http://x|y>" * 200 for i in range(13)}
    long = Alert(Level.ERROR, "T" * 400, "<@U123> " * 1000, "cache", many, NOW, "cache_cap")
    payload = build_payload(long, "h")
    assert check_payload(payload) is None  # header ≤ 150, ≤ 10 fields a section, …
    texts = str(payload["blocks"])
    assert "<!channel>" not in texts and "&lt;!channel&gt;" in texts and "&amp;" in texts
    sections = [b for b in payload["blocks"] if "fields" in b]
    assert [len(b["fields"]) for b in sections] == [10, 5]  # host, component + 13 details


def test_payload_masks_a_registered_secret_in_an_error_text() -> None:
    redact.register("influx-token-0123456789abcdef")
    a = alert(error="401 with token influx-token-0123456789abcdef")
    assert "influx-token-0123456789abcdef" not in str(build_payload(a, "h"))


# --- posting (loopback) --------------------------------------------------------------


@pytest.mark.integration
def test_success_posts_the_payload(server: SlackWebhookServer) -> None:
    notifier = SlackNotifier(server.webhook_url(SECRET), host="pi4")
    assert notifier.send(alert()) == SendResult(True, None, 200)
    (post,) = server.posts
    assert post.path == f"/services/T000/B000/{SECRET}"
    assert post.json == build_payload(alert(), "pi4")
    assert post.headers["Content-Type"] == "application/json"


@pytest.mark.integration
def test_429_waits_retry_after_then_retries_once(server: SlackWebhookServer) -> None:
    server.respond(Answer.rate_limited(1), Answer.ok())
    notifier = SlackNotifier(server.webhook_url(SECRET))
    started = time.monotonic()
    result = notifier.send(alert())
    elapsed = time.monotonic() - started
    assert result.ok and result.status == 200
    first, second = server.posts
    assert (first.answered, second.answered) == (429, 200)
    assert second.at - first.at >= 1.0 and elapsed >= 1.0
    assert second.body == first.body


@pytest.mark.integration
def test_429_twice_gives_up_after_one_retry(server: SlackWebhookServer) -> None:
    server.always(Answer.rate_limited(0.2))
    result = SlackNotifier(server.webhook_url(SECRET)).send(alert())
    assert result == SendResult(False, "rate_limited", 429)
    assert len(server.posts) == 2
    assert result.hint().startswith("Slack is rate-limiting")


@pytest.mark.integration
def test_retry_after_is_capped(server: SlackWebhookServer) -> None:
    server.respond(Answer.rate_limited(3600), Answer.ok())
    notifier = SlackNotifier(server.webhook_url(SECRET), max_retry_after=0.3)
    started = time.monotonic()
    assert notifier.send(alert()).ok
    assert 0.3 <= time.monotonic() - started < 2


@pytest.mark.integration
@pytest.mark.parametrize(
    ("answer", "reason", "status", "hint"),
    [
        (Answer.invalid_payload(), "invalid_payload", 400, "octomon bug"),
        (Answer.forbidden("invalid_token"), "invalid_token", 403, "create a new one"),
        (Answer.forbidden(), "action_prohibited", 403, "admin"),
        (Answer.channel_not_found(), "channel_not_found", 404, "channel was deleted"),
        (Answer.no_service(), "no_service", 404, "removed or revoked"),
        (Answer.archived(), "channel_is_archived", 410, "unarchive"),
        (Answer.server_error(), "server error", 500, "try again later"),
        (Answer.server_error(503), "server error", 503, "try again later"),
    ],
)
def test_failures_name_slacks_reason(
    server: SlackWebhookServer, answer: Answer, reason: str, status: int, hint: str
) -> None:
    server.always(answer)
    result = SlackNotifier(server.webhook_url(SECRET)).send(alert())
    assert result == SendResult(False, reason, status)
    assert result.describe() == f"{reason} (HTTP {status})"
    assert hint in result.hint()
    assert len(server.posts) == 1  # no retry except for 429
    assert SECRET not in result.describe() + result.hint()


@pytest.mark.integration
def test_bad_payload_is_refused_by_the_server_like_slack(server: SlackWebhookServer) -> None:
    notifier = SlackNotifier(server.webhook_url(SECRET))
    assert notifier.post(
        {"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]}
    ) == (SendResult(False, "invalid_blocks", 400))
    assert notifier.post({}) == SendResult(False, "no_text", 400)


@pytest.mark.integration
def test_hanging_server_is_a_timeout(server: SlackWebhookServer) -> None:
    server.always(Answer.hanging(10))
    started = time.monotonic()
    result = SlackNotifier(server.webhook_url(SECRET), timeout=0.5).send(alert())
    assert time.monotonic() - started < 2
    assert result == SendResult(False, "timeout after 0.5 s", None)
    assert "network access" in result.hint()


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T000/B000/{SECRET}"
    assert SlackNotifier(url).send(alert()) == SendResult(False, "connection refused", None)


@responses.activate
@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (
            requests.exceptions.SSLError("bad cert for https://hooks.example/services/" + SECRET),
            "TLS error",
        ),
        (
            requests.exceptions.ConnectionError("https://hooks.example/services/" + SECRET),
            "connection failed",
        ),
        (
            requests.exceptions.ReadTimeout("https://hooks.example/services/" + SECRET),
            "timeout after 5 s",
        ),
        (RuntimeError(SECRET), "unexpected RuntimeError"),
    ],
)
def test_transport_errors_never_raise_nor_carry_the_url(exc: Exception, reason: str) -> None:
    url = f"https://hooks.example/services/T/B/{SECRET}"
    responses.add(responses.POST, url, body=exc)
    result = SlackNotifier(url).send(alert())
    assert result == SendResult(False, reason, None)
    assert SECRET not in repr(result)


@responses.activate
def test_any_2xx_is_success_and_html_5xx_is_not_echoed() -> None:
    url = f"https://hooks.example/services/T/B/{SECRET}"
    responses.add(responses.POST, url, status=204, body="")
    responses.add(responses.POST, url, status=502, body="<html>" + SECRET + "</html>")
    notifier = SlackNotifier(url)
    assert notifier.send(alert()).ok
    assert notifier.send(alert()) == SendResult(False, "server error", 502)


# --- the background Alerter ---------------------------------------------------------


@pytest.mark.integration
def test_alerter_posts_from_the_background_spaced_out(server: SlackWebhookServer) -> None:
    alerter = Alerter(server.webhook_url(SECRET), host="pi4", min_interval=0.3)
    started = time.monotonic()
    alerter.emit([alert("one"), alert("two"), alert("three")])
    assert time.monotonic() - started < 0.05
    posts = server.wait_for_posts(3)
    assert [p.json["blocks"][0]["text"]["text"] for p in posts] == [
        ":warning: one",
        ":warning: two",
        ":warning: three",
    ]
    gaps = [b.at - a.at for a, b in itertools.pairwise(posts)]
    assert all(gap >= 0.28 for gap in gaps), gaps
    alerter.close()
    assert alerter.sent == 3 and alerter.last is not None and alerter.last.title == "three"


@pytest.mark.integration
def test_slack_outage_costs_emit_only_a_queue_put(server: SlackWebhookServer) -> None:
    server.always(Answer.hanging(30))
    alerter = Alerter(server.webhook_url(SECRET), min_interval=0.0)
    policy = AlertPolicy()
    alerter.emit(policy.started(NOW, mode="influxdb", device_id="d"))
    deadline = time.monotonic() + 5
    while server.requests_started == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.requests_started == 1  # the sender is now stuck on a hanging Slack
    durations = []
    for minute in range(20):  # a monitor cycle's worth of alerts, 20 times
        batch = policy.octopus_failed(NOW, "x") + policy.stopped(NOW, cached=minute)
        started = time.monotonic()
        alerter.emit(batch)
        durations.append(time.monotonic() - started)
    assert max(durations) < 0.05, durations
    started = time.monotonic()
    alerter.close(timeout=3)
    assert time.monotonic() - started < 3.5
    assert server.requests_started == 1


@pytest.mark.integration
def test_close_cuts_a_post_started_after_it_to_the_deadline(server: SlackWebhookServer) -> None:
    server.respond(Answer.rate_limited(0.5)).always(Answer.hanging(30))
    alerter = Alerter(server.webhook_url(SECRET), min_interval=0.0, timeout=30)
    alerter.emit([alert()])
    server.wait_for_posts(1)  # 429: the sender now waits 0.5 s, then retries into a hang
    started = time.monotonic()
    alerter.close(timeout=1.5)  # the retry's 30 s timeout was cut to the deadline
    assert not alerter.sender_alive
    assert 1.0 <= time.monotonic() - started < 2
    assert server.requests_started == 2 and alerter.failed == 1


@pytest.mark.integration
def test_close_gives_queued_alerts_their_chance(server: SlackWebhookServer) -> None:
    alerter = Alerter(server.webhook_url(SECRET), min_interval=0.1)
    alerter.emit(AlertPolicy().stopped(NOW, cached=0))
    started = time.monotonic()
    alerter.close(timeout=3)
    assert not alerter.sender_alive
    assert time.monotonic() - started < 1
    (post,) = server.posts
    assert post.json["blocks"][0]["text"]["text"] == ":information_source: octomon stopped"


@pytest.mark.integration
def test_close_cuts_a_long_retry_after_short(server: SlackWebhookServer) -> None:
    server.always(Answer.rate_limited(10))
    alerter = Alerter(server.webhook_url(SECRET), min_interval=0.0)
    alerter.emit([alert()])
    server.wait_for_posts(1)
    started = time.monotonic()
    alerter.close(timeout=1)  # finished, not abandoned
    assert not alerter.sender_alive
    assert time.monotonic() - started < 1.5
    assert len(server.posts) == 1  # the 10 s wait was cut, so no retry after the deadline
    assert alerter.failed == 1


@pytest.mark.integration
def test_sender_survives_failures_and_logs_the_host_only(
    server: SlackWebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.respond(Answer.server_error(), Answer.channel_not_found(), Answer.ok())
    alerter = Alerter(server.webhook_url(SECRET), min_interval=0.0)
    with caplog.at_level(logging.INFO):
        alerter.emit([alert("a"), alert("b"), alert("c")])
        alerter.close(timeout=3)
    assert [p.answered for p in server.posts] == [500, 404, 200]
    assert (alerter.sent, alerter.failed) == (1, 2)
    warnings = [r.getMessage() for r in caplog.records if r.name == "octomon.alerts.slack"]
    assert any("server error (HTTP 500)" in w and "http://127.0.0.1/…" in w for w in warnings)
    assert any("channel_not_found (HTTP 404)" in w for w in warnings)
    assert SECRET not in caplog.text


@pytest.mark.integration
def test_sender_outlives_an_exception(
    server: SlackWebhookServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    alerter = Alerter(server.webhook_url(SECRET), min_interval=0.0)
    assert alerter.notifier is not None
    real_send = alerter.notifier.send
    calls = []

    def flaky_send(a: Alert) -> SendResult:
        calls.append(a.title)
        if len(calls) == 1:
            raise RuntimeError(f"boom {SECRET}")
        return real_send(a)

    monkeypatch.setattr(alerter.notifier, "send", flaky_send)
    with caplog.at_level(logging.WARNING):
        alerter.emit([alert("first"), alert("second")])
        alerter.close(timeout=3)
    assert not alerter.sender_alive
    assert calls == ["first", "second"] and len(server.posts) == 1
    assert (alerter.sent, alerter.failed) == (1, 1)
    assert "Slack sender error via http://127.0.0.1/…: RuntimeError" in caplog.text
    assert SECRET not in caplog.text


def test_a_malformed_alert_is_a_result_not_an_exception() -> None:
    bad = Alert(Level.INFO, "t", "x", "c", {"n": 3}, NOW, "k")
    assert build_payload(bad, "h")["blocks"][2]["fields"][2]["text"] == "*n*\n3"
    broken = Alert(Level.INFO, "t", "x", "c", {}, "not a time", "k")
    result = SlackNotifier(f"http://127.0.0.1:{free_port()}/s/{SECRET}").send(broken)
    assert result == SendResult(False, "cannot build the message (AttributeError)", None)


@pytest.mark.integration
def test_slack_down_entirely_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    alerter = Alerter(f"http://127.0.0.1:{free_port()}/services/T/B/{SECRET}", min_interval=0)
    with caplog.at_level(logging.WARNING):
        alerter.emit([alert()])
        alerter.close(timeout=3)
    assert alerter.failed == 1
    assert "connection refused" in caplog.text and SECRET not in caplog.text


def test_without_a_webhook_alerts_go_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    alerter = Alerter(None)
    policy = AlertPolicy()
    with caplog.at_level(logging.INFO, logger="octomon.alerts"):
        alerter.emit(policy.started(NOW, mode="local", device_id=None))
        alerter.emit(policy.cache_evicted(NOW, 1, 8640))
    levels = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "octomon.alerts"]
    assert levels[0][0] == logging.INFO and "octomon started" in levels[0][1]
    assert levels[1][0] == logging.ERROR and "8,640 readings lost" in levels[1][1]
    assert not alerter.slack_enabled and "log only" in alerter.describe()
    assert alerter.last is not None and alerter.last.key == "cache_cap"
    alerter.close()


def test_queue_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T/B/{SECRET}"
    alerter = Alerter(url, min_interval=10, max_queue=5)
    alerter.emit([alert(str(i)) for i in range(20)])
    # 5 wait in the queue; the sender may hold two more (one sent, one waiting out
    # min_interval), so at least 13 of the 20 are dropped, never queued without bound.
    assert alerter.dropped >= 13
    assert "Slack queue full" in caplog.text
    started = time.monotonic()
    alerter.close(timeout=0.5)
    assert not alerter.sender_alive
    assert time.monotonic() - started < 1
    assert "Slack (http://127.0.0.1/…)" in alerter.describe()
