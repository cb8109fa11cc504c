"""The real `octomon run` against octomon.sim and a real VictoriaMetrics that goes away.

Stop the database for about ten seconds mid-run, start it again: the loopback Slack gets
the cache-mode warning, then "restored" with the synced count; the cache ends empty; and
every reading the simulator served is in the database once per timestamp, exactly.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from octomon.sim import SimHomeMini, SimServer
from tests.helpers.daemon import OCTOMON, Daemon, cache_files, compare_db, daemon_env, expected
from tests.helpers.services import VictoriaMetrics
from tests.helpers.slack_server import SlackWebhookServer
from tests.helpers.tally import assert_tally_is_what_was_served


@pytest.fixture
def sim() -> Iterator[tuple[SimHomeMini, SimServer]]:
    sim = SimHomeMini(rate_limit_per_hour=100)
    with SimServer(sim) as server:
        yield sim, server


@pytest.fixture
def slack() -> Iterator[SlackWebhookServer]:
    with SlackWebhookServer() as server:
        yield server


def titles(slack: SlackWebhookServer) -> list[str]:
    out = []
    for post in slack.posts:
        text = post.json.get("text", "") if isinstance(post.json, dict) else ""
        out.append(text)
    return out


@pytest.mark.integration
@pytest.mark.slow
def test_influxdb_outage_is_cached_then_synced_with_nothing_lost(
    tmp_path: Path,
    victoria: VictoriaMetrics,
    sim: tuple[SimHomeMini, SimServer],
    slack: SlackWebhookServer,
) -> None:
    the_sim, server = sim
    env = daemon_env(
        sim=the_sim,
        api_url=server.url,
        cache_dir=tmp_path / "cache",
        influx_url=victoria.url,
        slack_url=slack.webhook_url(),
    )
    daemon = Daemon(env, tmp_path / "octomon.log").start()
    try:
        daemon.wait_status(
            lambda s: s["stored_this_session"] > 300 and s["mode"] == "influxdb",
            what="the first window stored in InfluxDB",
        )
        check = subprocess.run(
            [OCTOMON, "status", "--check"], env=env, capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.startswith("healthy:")
        victoria.stop()
        down_at = time.monotonic()
        daemon.wait_status(lambda s: s["mode"] == "cache", timeout=60, what="cache mode")
        daemon.wait_status(lambda s: s["cache_backlog"] > 0, what="a cached reading")
        assert cache_files(tmp_path / "cache")
        time.sleep(max(0.0, 10 - (time.monotonic() - down_at)))
        victoria.start()
        daemon.wait_status(
            lambda s: s["mode"] == "influxdb" and s["cache_backlog"] == 0,
            timeout=30,
            what="InfluxDB restored and the cache drained",
        )
        code, took = daemon.term()
    finally:
        daemon.stop_quietly()
    assert code == 0, daemon.output()
    assert took < 15
    assert cache_files(tmp_path / "cache") == []

    posts = slack.wait_for_posts(4)
    said = titles(slack)
    lost = next(i for i, t in enumerate(said) if "InfluxDB unreachable" in t)
    restored = next(i for i, t in enumerate(said) if "InfluxDB restored" in t)
    assert lost < restored, said
    assert "synced" in said[restored], said  # the synced count is folded into "restored"
    assert sum("InfluxDB unreachable" in t for t in said) == 1, said
    assert "octomon stopped" in said[-1], said
    assert all(p.json for p in posts)

    want = expected(the_sim)
    assert len(want) > 300
    compare_db(victoria, want)
    # the reconciliation's Home Mini side: every served reading stored, counted once
    assert assert_tally_is_what_was_served(tmp_path / "cache", the_sim) >= 1
