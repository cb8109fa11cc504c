"""The feed (SPEC §13): what the outputs are handed after each store — the newest reading
per fuel, today's kWh from the tally (a reading stored twice counts once; a new UK day
starts from zero), counters per fuel and per cycle outcome — and the settings of §2."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon import config
from octomon.daemon.status import Status
from octomon.errors import ConfigError
from octomon.publish.feed import Feed, View, watts
from octomon.readings import GasReading, Reading
from octomon.store.tally import Tally

T0 = datetime(2026, 11, 27, 23, 50, tzinfo=timezone.utc)  # ten minutes before UK midnight


class Kept:
    """An output that keeps what it was handed (the real ones are tested against Mosquitto
    and over HTTP)."""

    name = "kept"

    def __init__(self) -> None:
        self.views: list[View] = []

    def update(self, view: View) -> None:
        self.views.append(view)

    def state(self) -> str:
        return f"{len(self.views)} views"

    def close(self) -> None:
        pass


class Broken(Kept):
    name = "broken"

    def update(self, view: View) -> None:
        raise RuntimeError("the broker library misbehaved")


def reading(at: datetime, kwh: float, register: float, kw: float = 0.3) -> Reading:
    return Reading(at, "dev-1", consumption_delta=kwh, demand=kw, consumption=register)


def status(at: datetime, outcome: str = "ok") -> Status:
    s = Status(started_at=T0, poll_interval=60, call_budget=75)
    s.last_cycle_at = at
    s.last_outcome = outcome
    if outcome == "ok":
        s.last_good_cycle_at = at
    return s


def test_newest_reading_today_from_the_tally_counted_once_and_a_new_day(tmp_path: Path) -> None:
    tally = Tally(tmp_path)
    earlier = [reading(T0 - timedelta(minutes=10), 0.5, 100.0)]
    tally.record(earlier)  # stored before this process started: in tally.json
    out = Kept()
    feed = Feed([out, Broken()], tmp_path)
    batch = [reading(T0 + timedelta(seconds=10 * i), 0.001, 100.5 + i / 1000) for i in range(3)]
    tally.record(batch)
    feed.stored(batch)
    feed.stored(batch[1:])  # the overlap stored again: counted once in today's kWh
    s = status(T0 + timedelta(minutes=1))
    feed.fill(s, T0 + timedelta(minutes=1))
    view = out.views[-1]
    assert view.electricity == batch[-1]
    assert view.today_kwh["electricity"] == pytest.approx(0.503)
    assert view.stored == {"electricity": 5, "gas": 0}  # stores, as the daemon made them
    assert view.cycles == {"ok": 1}
    assert view.ready(T0 + timedelta(minutes=1)) == (True, "ok")
    assert s.outputs == {"kept": "1 views", "broken": "0 views"}  # a failing output is harmless

    feed.fill(s, T0 + timedelta(minutes=2))  # the same cycle refreshed again: not counted twice
    assert out.views[-1].cycles == {"ok": 1}
    after = T0 + timedelta(minutes=15)  # a new UK day
    late = [reading(after, 0.002, 100.6)]
    tally.record(late)
    feed.stored(late)
    feed.fill(status(after, "failed"), after)
    assert out.views[-1].today_kwh["electricity"] == pytest.approx(0.002)
    assert out.views[-1].cycles == {"ok": 1, "failed": 1}
    assert out.views[-1].ready(after)[0] is False


def test_gas_keeps_its_own_newest_and_today(tmp_path: Path) -> None:
    out = Kept()
    feed = Feed([out], tmp_path, calorific_value=39.5)
    gas = GasReading(T0 - timedelta(minutes=20), "gas-1", consumption_delta=1.25, consumption=500.0)
    Tally(tmp_path).record([gas])
    feed.fill(status(T0), T0)  # the first view reads today's tally
    feed.stored([reading(T0, 0.001, 1.0)])
    feed.fill(status(T0 + timedelta(seconds=60)), T0 + timedelta(seconds=60))
    view = out.views[-1]
    assert view.gas is None  # not stored by this process yet
    assert view.today_kwh["gas"] == 1.25
    assert view.gas_today_m3 == pytest.approx(1.25 * 3.6 / 39.5 / 1.02264)


def test_ready_follows_the_status_check_rule() -> None:
    good = T0
    view = View(poll_interval=60, last_good_cycle_at=good)
    assert view.ready(good + timedelta(seconds=240))[0]
    assert view.ready(good + timedelta(seconds=241)) == (
        False,
        "the last good cycle was 241 s ago",
    )
    assert View().ready(good) == (False, "no good cycle yet")


def test_watts_are_exact() -> None:
    assert watts(0.3) == 300.0
    assert watts(1.234) == 1234.0


@pytest.mark.parametrize(
    ("raw", "want"),
    [("9110", "127.0.0.1:9110"), ("0.0.0.0:9110", "0.0.0.0:9110"), ("[::1]:9110", "::1:9110")],
)
def test_http_listen(raw: str, want: str) -> None:
    assert config.load(groups=("publish",), environ={"HTTP_LISTEN": raw}).http_listen == want


def test_bad_output_settings_are_all_named_with_the_password_masked() -> None:
    environ = {
        "HTTP_LISTEN": "localhost:http",
        "MQTT_URL": "http://user:pa55word-secret@broker:1883",
        "MQTT_TOPIC_PREFIX": "octo/#",
        "HA_DISCOVERY_PREFIX": "/homeassistant",
    }
    with pytest.raises(ConfigError) as err:
        config.load(groups=("publish",), environ=environ)
    text = "\n".join(err.value.problems)
    assert "HTTP_LISTEN='localhost:http': must be HOST:PORT or a port" in text
    assert "MQTT_URL='http://broker/…': must be mqtt://" in text
    assert "MQTT_TOPIC_PREFIX='octo/#': must be a topic without +, #" in text
    assert "HA_DISCOVERY_PREFIX='/homeassistant'" in text
    assert "pa55word-secret" not in text
