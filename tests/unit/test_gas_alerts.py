"""Gas staleness (SPEC §11): 6 h without a new gas half-hour while the API answers is one
warning; new half-hours again are one "fresh again". The clock is injected."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from octomon.alerts.policy import AlertPolicy, Level

T0 = datetime(2026, 12, 1, 6, 10, tzinfo=timezone.utc)
HALF = timedelta(minutes=30)


def test_stale_after_six_hours_once_then_fresh_again_once() -> None:
    policy = AlertPolicy()
    newest = T0 - timedelta(minutes=40)  # the last half-hour that arrived
    sent = []
    now = T0
    for _ in range(13):  # polls every half-hour; no new half-hour arrives
        sent += [(now, a) for a in policy.gas(now, newest)]
        sent += [(now, a) for a in policy.due_repeats(now)]
        now += HALF
    # Judged from the start (the daemon may have been down): 6 h after it, once.
    assert [(at - T0, a.level, a.title) for at, a in sent] == [
        (timedelta(hours=6), Level.WARNING, "Gas data stale")
    ]
    ((_, alert),) = sent
    assert "The newest gas half-hour is from" in alert.text and "(6 h 40 min ago)" in alert.text
    assert policy.telemetry(now, now) == []  # electricity is another condition
    sent.clear()
    for _ in range(6):  # the meter is back: each poll brings the newest half-hour
        sent += [(now, a) for a in policy.gas(now, now - timedelta(minutes=50))]
        sent += [(now, a) for a in policy.due_repeats(now)]
        now += HALF
    assert [(a.level, a.title, a.recovery) for _, a in sent] == [
        (Level.INFO, "Gas data fresh again", True)
    ]


def test_a_daemon_that_just_started_is_not_stale_and_without_any_gas_waits_six_hours() -> None:
    policy = AlertPolicy()
    assert policy.gas(T0, None) == []
    assert policy.gas(T0 + timedelta(hours=5, minutes=59), None) == []
    (alert,) = policy.gas(T0 + timedelta(hours=6), None)
    assert alert.title == "Gas data stale"
    assert "No gas half-hour has arrived since octomon started" in alert.text
    assert policy.gas(T0 + timedelta(hours=7), None) == []
