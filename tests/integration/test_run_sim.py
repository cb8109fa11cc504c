"""The monitor in-process against octomon.sim over real HTTP, on one injected clock.

The simulator's clock and the monitor's are the same fake clock, so 15 minutes of a
frozen Home Mini, a token's 60-minute life or a 5-minute backoff pass in milliseconds,
with the real Kraken client, the real cache and the real call ledger.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.alerts.policy import Alert
from octomon.config import Settings
from octomon.daemon.monitor import Monitor
from octomon.daemon.outcome import DISK_FULL, OK, RATE_LIMITED, CycleResult
from octomon.readings import Reading
from octomon.sim import SimHomeMini, SimServer
from octomon.state import State, StateStore
from octomon.wiring import build_monitor
from tests.helpers.clock import ManualClock
from tests.helpers.daemon import cached_readings, expected
from tests.helpers.sim_faults import FaultySim

T0 = datetime(2026, 11, 27, 17, 0, 0, tzinfo=timezone.utc)


@dataclass
class Recorder:
    sent: list[Alert] = field(default_factory=list)

    def emit(self, alerts: Sequence[Alert]) -> None:
        self.sent.extend(alerts)

    def close(self, timeout: float = 3.0) -> None:
        pass

    def keyed(self, key: str, recovery: bool = False) -> list[Alert]:
        return [a for a in self.sent if a.key == key and a.recovery == recovery]


@dataclass
class Rig:
    sim: SimHomeMini
    clock: ManualClock
    monitor: Monitor
    alerts: Recorder
    cache_dir: Path

    def cycle(self, advance: float = 60) -> CycleResult:
        self.clock.now += timedelta(seconds=advance)
        return self.monitor.cycle(self.clock.now)

    def cycles(self, n: int, every: float = 60) -> list[CycleResult]:
        return [self.cycle(every) for _ in range(n)]

    def telemetry_calls(self) -> int:
        return sum(1 for _, op in self.sim.calls if op == "telemetry")

    def token_calls(self) -> int:
        return sum(1 for _, op in self.sim.calls if op == "token")


def make_rig(tmp_path: Path, sim: SimHomeMini, clock: ManualClock, server: SimServer) -> Rig:
    settings = Settings(
        octopus_api_key=sim.api_key,
        octopus_account_number=sim.account_number,
        octopus_api_url=server.url,
        octopus_rest_url=server.rest_url,
        cache_dir=tmp_path / "cache",
        poll_interval_seconds=60,
    )
    alerts = Recorder()
    monitor = build_monitor(settings, stop=threading.Event(), clock=clock, alerter=alerts)
    monitor.start(clock())
    return Rig(sim, clock, monitor, alerts, tmp_path / "cache")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = ManualClock(T0)
    sim = FaultySim(clock=clock, rate_limit_per_hour=100)
    with SimServer(sim) as server:
        rig = make_rig(tmp_path, sim, clock, server)
        yield rig
        rig.monitor.close(clock(), announce=False)


def assert_everything_served_is_cached(rig: Rig) -> None:
    cached = cached_readings(rig.cache_dir)
    want: dict[datetime, Reading] = expected(rig.sim)
    missing = sorted(set(want) - set(cached))
    assert not missing, f"{len(missing)} served readings not stored, e.g. {missing[:3]}"
    assert all(cached[ts][0] == want[ts] for ts in want)
    assert set(cached) <= set(want)  # nothing invented


@pytest.mark.integration
def test_frozen_home_mini_one_stale_alert_after_15_minutes_then_one_fresh_again(rig: Rig) -> None:
    rig.cycles(5)
    frozen_at = rig.clock.now
    rig.sim.freeze()
    results = rig.cycles(25)  # 25 minutes frozen
    assert all(r.outcome == OK for r in results)  # the API answers all along
    stale = rig.alerts.keyed("stale")
    assert len(stale) == 1, [a.title for a in stale]
    assert stale[0].title == "Home Mini data stale"
    assert "Power-cycle the Home Mini" in stale[0].text
    since = stale[0].at - frozen_at
    assert timedelta(minutes=14) <= since <= timedelta(minutes=16), since
    assert rig.alerts.keyed("stale", recovery=True) == []

    rig.sim.unfreeze()
    rig.cycles(12)
    fresh = rig.alerts.keyed("stale", recovery=True)
    assert len(fresh) == 1 and fresh[0].title == "Home Mini data fresh again"
    assert len(rig.alerts.keyed("stale")) == 1
    assert_everything_served_is_cached(rig)


@pytest.mark.integration
def test_a_frozen_device_for_two_days_does_not_pin_the_cursor(rig: Rig) -> None:
    rig.cycles(2)
    rig.sim.freeze()
    for _ in range(2 * 24 * 60 // 30):
        rig.cycle(30 * 60)  # every 30 minutes for two days
    rig.sim.unfreeze()
    result = rig.cycle(120)
    cursor = rig.monitor.cursor
    assert cursor is not None and cursor > rig.clock.now - timedelta(minutes=20)
    assert result.caught_up and result.stored > 0


@pytest.mark.integration
def test_tokens_are_renewed_ahead_of_expiry_and_after_an_early_expiry(rig: Rig) -> None:
    results = rig.cycles(150)  # 2.5 hours: the 60-minute token is renewed twice
    assert all(r.outcome == OK for r in results), [r.summary() for r in results if not r.ok]
    assert rig.token_calls() == 3
    # Each renewal took its cycle's turn (one request that cycle); the next poll's window
    # covers the minute (assert_everything_served_is_cached below).
    renewals = [r for r in results if r.renewed]
    assert len(renewals) == 2 and all(r.fetched == 0 and r.caught_up for r in renewals)
    assert renewals[0].summary().startswith("renewed the Kraken token")
    rig.sim.expire_tokens()  # expired mid-run, early
    after = rig.cycles(3)
    assert all(r.outcome == OK for r in after)
    assert rig.token_calls() == 4
    rig.sim.expire_tokens(refresh=True)  # the refresh token too: back to the API key
    assert rig.cycle().outcome == OK
    assert rig.alerts.keyed("octopus") == []
    assert_everything_served_is_cached(rig)
    state = StateStore(rig.cache_dir).load()
    assert state.refresh_token == rig.monitor.client.refresh_token is not None


@pytest.mark.integration
def test_rate_limit_backs_off_five_minutes_then_doubles_without_hammering(rig: Rig) -> None:
    rig.cycles(3)
    rig.sim.rate_limited = True
    first = rig.cycle()
    assert first.outcome == RATE_LIMITED and first.retry_in == 300
    calls = len(rig.sim.calls)
    waiting = rig.cycles(4)  # minutes 1-4 of the backoff: not one request is sent
    assert all(r.outcome == RATE_LIMITED for r in waiting)
    assert len(rig.sim.calls) == calls
    again = rig.cycle()  # minute 5: one try, still limited: 10 minutes now
    assert again.outcome == RATE_LIMITED and again.retry_in == 600
    assert len(rig.sim.calls) == calls + 1
    rig.sim.rate_limited = False
    rig.cycles(9)
    assert len(rig.sim.calls) == calls + 1
    back = rig.cycle()
    assert back.outcome == OK and back.caught_up
    assert rig.alerts.keyed("octopus") == []  # rate limits are not failed cycles
    assert rig.alerts.keyed("rate_limit") == []  # and it did not last 30 minutes
    assert rig.sim.rate_limited_answers == 2
    assert_everything_served_is_cached(rig)


@pytest.mark.integration
def test_a_start_older_than_the_api_serves_jumps_and_is_reported_once(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)
    sim = SimHomeMini(clock=clock)
    sim.retention = timedelta(hours=20)

    def three_days_old(state: State) -> None:
        state.cursor = T0 - timedelta(days=3)

    StateStore(tmp_path / "cache").update(three_days_old)
    with SimServer(sim) as server:
        rig = make_rig(tmp_path, sim, clock, server)
        first = rig.cycle(0)
        assert first.outcome == OK
        assert first.window is not None
        assert first.window[0] == T0 - timedelta(hours=6)  # 24 h refused too, so 6 h
        lost = rig.alerts.keyed("range_lost")
        assert len(lost) == 1
        rig.cycles(3)
        assert len(rig.alerts.keyed("range_lost")) == 1
        assert_everything_served_is_cached(rig)
        rig.monitor.close(clock(), announce=False)


@pytest.mark.integration
def test_first_start_stores_the_last_hour(rig: Rig) -> None:
    result = rig.cycle(0)
    assert result.window == (T0 - timedelta(hours=1), T0)
    assert result.stored > 300
    assert_everything_served_is_cached(rig)


@pytest.mark.integration
def test_a_full_disk_moves_nothing_alerts_once_and_loses_nothing(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import octomon.store.cache

    rig.cycles(2)
    cursor = rig.monitor.cursor
    real_write = octomon.store.cache.write_all

    def full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(octomon.store.cache, "write_all", full)
    failed = rig.cycles(10)  # ten minutes of a full disk
    assert {r.outcome for r in failed} == {DISK_FULL}
    assert rig.monitor.cursor == cursor == StateStore(rig.cache_dir).load().cursor
    assert len(rig.alerts.keyed("cache_write")) == 1
    assert "no space left on device" in str(failed[-1].error)
    monkeypatch.setattr(octomon.store.cache, "write_all", real_write)
    back = rig.cycle()
    assert back.outcome == OK and back.stored >= 60  # the same span, fetched again
    rig.cycles(6)
    assert len(rig.alerts.keyed("cache_write", recovery=True)) == 1
    assert_everything_served_is_cached(rig)


@pytest.mark.integration
def test_a_slack_outage_costs_a_cycle_nothing_and_loses_no_reading(tmp_path: Path) -> None:
    """Slack hangs on every post while InfluxDB is down (alerts galore): cycles stay fast,
    every served reading is cached, and the stop alert gets at most its 3 s."""
    import time

    from octomon.alerts.slack import Alerter
    from tests.helpers.services import free_port
    from tests.helpers.slack_server import Answer, SlackWebhookServer

    clock = ManualClock(T0)
    sim = FaultySim(clock=clock, rate_limit_per_hour=100)
    with SimServer(sim) as server, SlackWebhookServer() as slack:
        slack.always(Answer.hanging(30))
        settings = Settings(
            octopus_api_key=sim.api_key,
            octopus_account_number=sim.account_number,
            octopus_api_url=server.url,
            octopus_rest_url=server.rest_url,
            influxdb_url=f"http://127.0.0.1:{free_port()}",  # nothing listens: cache mode
            influxdb_token="token-for-a-dead-influxdb",
            influxdb_org="home",
            cache_dir=tmp_path / "cache",
            poll_interval_seconds=60,
        )
        alerter = Alerter(slack.webhook_url(), min_interval=0.01)
        monitor = build_monitor(settings, stop=threading.Event(), clock=clock, alerter=alerter)
        monitor.start(clock())
        durations = []
        for i in range(20):
            if i == 5:
                sim.freeze()  # a stale alert on top of the InfluxDB one
            clock.now += timedelta(seconds=60)
            started = time.monotonic()
            result = monitor.cycle(clock.now)
            durations.append(time.monotonic() - started)
            assert result.ok, result
        slack.wait_for_posts(1, timeout=5)  # the sender is stuck on a hanging post
        started = time.monotonic()
        monitor.close(clock.now)
        closing = time.monotonic() - started
        rig = Rig(sim, clock, monitor, Recorder(), tmp_path / "cache")
        assert_everything_served_is_cached(rig)
    assert max(durations) < 2.0, durations
    assert closing < 5.0, closing


@pytest.mark.integration
@pytest.mark.parametrize("every", [300, 1800, 3600])
def test_polls_minutes_apart_are_never_given_up_for_a_renewal(tmp_path: Path, every: int) -> None:
    """The renewal turn is for polls under 5 minutes apart; further apart, every cycle
    polls (the token is renewed with the poll when it falls due)."""
    clock = ManualClock(T0)
    sim = SimHomeMini(clock=clock, rate_limit_per_hour=100)
    with SimServer(sim) as server:
        rig = make_rig(tmp_path, sim, clock, server)
        rig.monitor.poll_interval = every
        try:
            results = rig.cycles(6 * 3600 // every, every=every)
        finally:
            rig.monitor.close(clock(), announce=False)
    assert all(r.ok and not r.renewed and r.fetched > 0 for r in results), [
        r.summary() for r in results if r.renewed or not r.fetched
    ]
    assert rig.telemetry_calls() >= len(results) and rig.token_calls() >= 2


@pytest.mark.integration
def test_a_life_killed_before_its_first_cursor_leaves_the_next_its_start(tmp_path: Path) -> None:
    """The first start fetches from one hour back. A process killed after a store but before
    it saved a cursor (or counted the readings into the tally) must not let the next one
    start an hour before *its* start: what the first stored would never be fetched again,
    and so never counted (seen once by the kill -9 test in CI)."""
    from tests.helpers.tally import assert_tally_is_what_was_served

    class Killed(BaseException):
        pass

    def die(readings: object) -> None:
        raise Killed

    clock = ManualClock(T0)
    sim = SimHomeMini(clock=clock, rate_limit_per_hour=100)
    with SimServer(sim) as server:
        first = make_rig(tmp_path, sim, clock, server)  # start: the first window's start saved
        first.monitor.stream.tally.stored = die  # type: ignore[assignment]  # dies after the store
        with pytest.raises(Killed):
            first.cycle(5)
        assert cached_readings(first.cache_dir)  # stored, not counted, no cursor saved
        assert StateStore(first.cache_dir).load().cursor is None
        clock.now += timedelta(seconds=20)
        second = make_rig(tmp_path, sim, clock, server)
        try:
            result = second.cycle(5)
            assert result.window is not None and result.window[0] == T0 - timedelta(hours=1)
            second.cycles(3)
        finally:
            second.monitor.close(clock(), announce=False)
    assert_everything_served_is_cached(second)
    assert assert_tally_is_what_was_served(second.cache_dir, sim) >= 2
    assert StateStore(second.cache_dir).load().first_window_start is None
