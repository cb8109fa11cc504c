"""The alert policy (SPEC §4.6) with an injected clock: nothing here sleeps."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from octomon.alerts.policy import Alert, AlertPolicy, Level, duration

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)


def at(minutes: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes)


def keyed(alerts: list[Alert], key: str) -> list[Alert]:
    return [a for a in alerts if a.key == key]


# --- InfluxDB: flapping, repeats, recovery ---------------------------------------------


def test_influx_flapping_100_times_in_10_minutes_gives_two_messages() -> None:
    policy = AlertPolicy()
    out: list[Alert] = []
    for i in range(100):  # lost, then restored and synced 3 s later, every 6 s, for 10 min
        t = T0 + i * 6 * SEC
        out += policy.influx_lost(t, "connection refused")
        out += policy.influx_restored(t + 3 * SEC)
        out += policy.cache_synced(t + 3 * SEC, 5)
        out += policy.due_repeats(t + 4 * SEC)
    for minute in range(10, 30):  # then it stays up; the monitor ticks every minute
        out += policy.due_repeats(at(minute))
    assert len(out) == 2
    lost, restored = out
    assert (lost.level, lost.title) == (Level.WARNING, "InfluxDB unreachable: caching readings")
    assert restored.level is Level.INFO and restored.recovery
    assert restored.title == "InfluxDB restored; synced 500 readings"
    assert restored.fields["relapses"].startswith("99")
    # announced once the last recovery (at 9:57) had held for 5 minutes
    assert restored.at == at(15)
    assert policy.open_problems() == []


def test_recovery_is_announced_after_it_holds_then_synced_separately() -> None:
    policy = AlertPolicy()
    assert [a.title for a in policy.influx_lost(at(0), "timeout")] == [
        "InfluxDB unreachable: caching readings"
    ]
    assert policy.influx_restored(at(10)) == []  # not yet: it has to hold
    assert policy.cache_synced(at(11), 1200) == []  # folded into the "restored"
    assert policy.due_repeats(at(14.9)) == []
    (restored,) = policy.due_repeats(at(15))
    assert restored.title == "InfluxDB restored; synced 1,200 readings"
    assert restored.fields["lasted"] == "10 min"
    # a later sync (a big backlog still draining) is its own message
    (synced,) = policy.cache_synced(at(20), 300)
    assert synced.title == "Cache synced: 300 readings" and synced.level is Level.INFO
    assert policy.influx_restored(at(21)) == [] and policy.due_repeats(at(60)) == []


def test_crash_looping_influx_settles_at_few_messages() -> None:
    """Down 2 min, up 8 min, for 6 hours: the settle time doubles on each relapse."""
    policy = AlertPolicy()
    out: list[Alert] = []
    for cycle in range(36):
        start = cycle * 10
        for minute in range(start, start + 10):
            if minute < start + 2:
                out += policy.influx_lost(at(minute), "connection refused")
            else:
                out += policy.influx_restored(at(minute))
            out += policy.due_repeats(at(minute))
    influx = keyed(out, "influx")
    assert 3 <= len(influx) <= 6, [a.title for a in influx]
    # the first relapse after an announced recovery is said at once, naming the longer settle
    relapse = [a for a in influx if "recovery announced after" in a.fields]
    assert relapse and relapse[0].fields["recovery announced after"] == "10 min without it"
    # once it stays up for an hour, the recovery is announced exactly once
    tail: list[Alert] = []
    for minute in range(360, 480):
        tail += policy.influx_restored(at(minute)) + policy.due_repeats(at(minute))
    assert [a.title for a in tail] == ["InfluxDB restored"]


def test_problem_open_9_hours_is_repeated_twice() -> None:
    policy = AlertPolicy()
    out: list[Alert] = []
    for minute in range(9 * 60):
        out += policy.influx_lost(at(minute), "connection refused")
        out += policy.due_repeats(at(minute))
    assert len(out) == 3
    first, *repeats = out
    assert not first.repeat and all(a.repeat for a in repeats)
    assert [a.fields["open for"] for a in repeats] == ["4 h", "8 h"]
    assert repeats[0].title == "Still: InfluxDB unreachable: caching readings"
    assert [a.at for a in repeats] == [at(240), at(480)]


def test_a_new_kind_of_influx_problem_is_one_more_message() -> None:
    policy = AlertPolicy()
    out = policy.influx_lost(at(0), "connection refused")
    out += policy.influx_config(at(1), "401 unauthorized access", "token")
    for minute in range(2, 30):
        out += policy.influx_config(at(minute), "401 unauthorized access", "token")
        out += policy.influx_lost(at(minute), "connection refused")
    assert [a.level for a in out] == [Level.WARNING, Level.ERROR]
    assert out[1].title == "InfluxDB refused the token"
    assert "INFLUXDB_TOKEN" in out[1].text


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        ('bucket "x" not found', "bucket"),
        ("organization not found (org)", "org"),
        ("403", "config"),
    ],
)
def test_influx_config_cause_guessed_from_the_error(error: str, cause: str) -> None:
    (alert,) = AlertPolicy().influx_config(at(0), error)
    assert alert.fields["cause"] == cause and alert.level is Level.ERROR


def test_cache_synced_outside_an_episode() -> None:
    policy = AlertPolicy()
    assert policy.cache_synced(at(0), 0) == []
    (alert,) = policy.cache_synced(at(0), 8640)
    assert alert.title == "Cache synced: 8,640 readings" and alert.key == "cache_sync"


# --- Octopus -------------------------------------------------------------------------


def test_octopus_alerts_after_three_failed_cycles_in_a_row() -> None:
    policy = AlertPolicy()
    assert policy.octopus_failed(at(0), "HTTP 502") == []
    assert policy.octopus_failed(at(1), "HTTP 502") == []
    assert policy.octopus_ok(at(2)) == []  # two failures are not a problem, nor a recovery
    assert policy.octopus_failed(at(3), "timeout") == []
    assert policy.octopus_failed(at(4), "timeout") == []
    (alert,) = policy.octopus_failed(at(5), "KT-GB-4039: service unavailable")
    assert alert.level is Level.ERROR and alert.key == "octopus"
    assert "3 cycles in a row" in alert.text
    assert alert.fields["last error"] == "KT-GB-4039: service unavailable"
    out: list[Alert] = []
    for minute in range(6, 60):
        out += policy.octopus_failed(at(minute), "timeout") + policy.due_repeats(at(minute))
    assert out == []
    out = []
    for minute in range(60, 120):
        out += policy.octopus_ok(at(minute)) + policy.due_repeats(at(minute))
    assert [(a.title, a.level) for a in out] == [("Octopus API recovered", Level.INFO)]


def test_rate_limited_cycles_do_not_count_as_failures() -> None:
    policy = AlertPolicy()
    out = policy.octopus_failed(at(0), "x") + policy.octopus_failed(at(1), "x")
    for minute in range(2, 20):
        out += policy.rate_limited(at(minute), since=at(2))
    out += policy.octopus_failed(at(20), "x")  # the third failure ends the run of three
    assert [a.key for a in out] == ["octopus"]


def test_rate_limit_alerts_only_after_30_minutes() -> None:
    policy = AlertPolicy()
    out: list[Alert] = []
    for minute in range(0, 31, 5):
        out += policy.rate_limited(at(minute), since=at(0))
    assert out == []  # 30 minutes exactly is not "over 30"
    (alert,) = policy.rate_limited(at(35), since=at(0))
    assert alert.level is Level.WARNING and alert.key == "rate_limit"
    assert alert.fields["since"] == "2026-11-27 12:00:00 UTC"
    assert policy.rate_limited(at(40), since=at(0)) == []
    out = []
    for minute in range(41, 60):
        out += policy.octopus_ok(at(minute))
    assert [a.title for a in out] == ["Octopus API no longer rate limited"]


def test_short_rate_limit_ends_silently() -> None:
    policy = AlertPolicy()
    out = policy.rate_limited(at(0), since=at(0)) + policy.rate_limited(at(20), since=at(0))
    out += policy.octopus_ok(at(25)) + policy.due_repeats(at(60))
    assert out == []


def test_auth_failed_is_an_error_once() -> None:
    policy = AlertPolicy()
    (alert,) = policy.auth_failed(at(0), "KT-CT-1139: authentication failed")
    assert alert.level is Level.ERROR and "OCTOPUS_API_KEY" in alert.text
    assert policy.auth_failed(at(1), "KT-CT-1139") == []


def test_range_lost_once_per_span() -> None:
    policy = AlertPolicy()
    start, end = at(-3 * 24 * 60), at(-24 * 60)
    (alert,) = policy.range_lost(at(0), start, end)
    assert alert.level is Level.ERROR and alert.key == "range_lost"
    assert alert.fields == {"from": "2026-11-24 12:00:00 UTC", "to": "2026-11-26 12:00:00 UTC"}
    assert "2 d" in alert.text
    assert policy.range_lost(at(1), start, end) == []
    assert len(policy.range_lost(at(2), end, at(-6 * 60))) == 1


# --- Home Mini staleness -------------------------------------------------------------


def test_stale_after_15_minutes_without_a_new_reading_then_fresh_once() -> None:
    policy = AlertPolicy()
    out: list[Alert] = []
    for minute in range(30):  # fresh data every minute
        out += policy.telemetry(at(minute), at(minute) - 30 * SEC)
    assert out == []
    frozen = at(29) - 30 * SEC
    for minute in range(30, 44):
        out += policy.telemetry(at(minute), frozen)
    assert out == []  # 14.5 minutes without a new readAt
    (stale,) = policy.telemetry(at(44.5), frozen)
    assert stale.level is Level.WARNING and stale.key == "stale"
    assert "Power-cycle the Home Mini" in stale.text
    assert stale.fields["last reading"] == "2026-11-27 12:28:30 UTC"
    for minute in range(45, 90):
        out += policy.telemetry(at(minute), frozen) + policy.due_repeats(at(minute))
    assert out == []
    for minute in range(90, 120):  # readings again
        out += policy.telemetry(at(minute), at(minute) - 30 * SEC) + policy.due_repeats(at(minute))
    assert [(a.title, a.level) for a in out] == [("Home Mini data fresh again", Level.INFO)]


def test_stale_at_start_waits_15_minutes_of_answers() -> None:
    policy = AlertPolicy()
    two_days_old = at(-2 * 24 * 60)
    out: list[Alert] = []
    for minute in range(15):
        out += policy.telemetry(at(minute), two_days_old)
    assert out == []
    (stale,) = policy.telemetry(at(15), None)  # an empty answer is no news either
    assert "2 d" in stale.text


def test_late_old_readings_do_not_count_as_fresh() -> None:
    policy = AlertPolicy()
    policy.telemetry(at(0), at(0))
    (stale,) = policy.telemetry(at(16), at(-5))  # an older readAt is not a new one
    assert stale.key == "stale"


# --- the cache -----------------------------------------------------------------------


def test_cache_failure_once_and_recovery_once() -> None:
    policy = AlertPolicy()
    out: list[Alert] = []
    for minute in range(30):
        out += policy.cache_failed(at(minute), "[Errno 28] No space left on device")
    assert [a.level for a in out] == [Level.ERROR]
    assert "No space left" in out[0].fields["error"]
    out = []
    for minute in range(30, 60):
        out += policy.cache_ok(at(minute))
    assert [a.title for a in out] == ["Caching works again"]


def test_cache_ok_without_a_failure_says_nothing() -> None:
    assert AlertPolicy().cache_ok(at(0)) == []


def test_eviction_is_an_error_naming_the_loss_then_summed_every_4_hours() -> None:
    policy = AlertPolicy()
    (alert,) = policy.cache_evicted(at(0), 2, 17280)
    assert alert.level is Level.ERROR and alert.key == "cache_cap"
    assert alert.title == "Cache over its cap: 17,280 readings lost"
    assert alert.fields["files"] == "2"
    # A cache at its cap drops a file at every append: not one message each.
    for minute in range(1, 200):
        assert policy.cache_evicted(at(minute), 1, 100) == []
    assert policy.due_repeats(at(200)) == []
    (more,) = policy.due_repeats(at(240))
    assert more.level is Level.ERROR and more.key == "cache_cap" and more.repeat
    assert more.title == "Cache over its cap: 19,900 more readings lost"
    assert more.fields["files"] == "199" and "In the last 4 h" in more.text
    assert policy.due_repeats(at(9 * 60)) == []  # nothing more was lost
    (again,) = policy.cache_evicted(at(9 * 60), 1, 50)  # a new episode: at once
    assert again.title == "Cache over its cap: 50 readings lost"


def test_write_refused_first_at_once_then_summed_every_4_hours() -> None:
    policy = AlertPolicy()
    (first,) = policy.write_refused(at(0), 3, "partial write: field type conflict")
    assert first.level is Level.ERROR and first.title == "InfluxDB refused 3 readings"
    out: list[Alert] = []
    for minute in range(1, 5 * 60):
        out += policy.write_refused(at(minute), 1, "field type conflict") if minute < 100 else []
        out += policy.due_repeats(at(minute))
    assert len(out) == 1
    assert out[0].title == "InfluxDB refused 99 more readings" and out[0].at == at(240)
    assert policy.due_repeats(at(9 * 60)) == []


# --- lifecycle -----------------------------------------------------------------------


def test_started_and_stopped() -> None:
    policy = AlertPolicy()
    (start,) = policy.started(at(0), mode="cache", device_id="00-11-22")
    assert start.level is Level.INFO and start.fields == {"mode": "cache", "device": "00-11-22"}
    (stop,) = policy.stopped(at(1), cached=0)
    assert stop.level is Level.INFO and stop.key == "lifecycle"
    (stop,) = policy.stopped(at(1), cached=4321)
    assert stop.level is Level.WARNING and stop.fields["cached readings"] == "4,321"


def test_stop_announces_a_pending_recovery_and_names_open_problems() -> None:
    policy = AlertPolicy()
    policy.influx_lost(at(0), "refused")
    policy.influx_restored(at(1))
    policy.cache_failed(at(1), "disk full")
    restored, stop = policy.stopped(at(2), cached=10)
    assert restored.title == "InfluxDB restored" and restored.recovery
    assert stop.fields["still open"] == "Caching failed"


def test_each_recovery_is_announced_exactly_once() -> None:
    policy = AlertPolicy()
    opened = policy.influx_lost(at(0), "x") + policy.cache_failed(at(0), "x")
    for minute in range(3):
        opened += policy.octopus_failed(at(minute), "x")
    opened += policy.rate_limited(at(40), since=at(0)) + policy.telemetry(at(0), at(0))
    opened += policy.telemetry(at(40), at(0))
    assert sorted(a.key for a in opened) == [
        "cache_write",
        "influx",
        "octopus",
        "rate_limit",
        "stale",
    ]
    out: list[Alert] = []
    for minute in range(41, 12 * 60):
        out += policy.influx_restored(at(minute)) + policy.cache_ok(at(minute))
        out += policy.octopus_ok(at(minute)) + policy.telemetry(at(minute), at(minute))
        out += policy.due_repeats(at(minute))
    assert sorted(a.key for a in out) == ["cache_write", "influx", "octopus", "rate_limit", "stale"]
    assert all(a.recovery and a.level is Level.INFO for a in out)


def test_alert_summary_and_duration_format() -> None:
    (alert,) = AlertPolicy().influx_lost(at(0), "connection refused")
    assert alert.summary().endswith("(error: connection refused)")
    assert [duration(timedelta(seconds=s)) for s in (5, 600, 3600, 3660, 3 * 86400 + 7200)] == [
        "5 s",
        "10 min",
        "1 h",
        "1 h 1 min",
        "3 d 2 h",
    ]
