"""`octomon verify-config --online`: the three connection tests against real loopback servers.

Octopus is `octomon.sim` over HTTP, Slack the loopback webhook server, InfluxDB a real
VictoriaMetrics (the `victoria` fixture) or a port nothing listens on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from octomon.cli import app
from octomon.sim import DEFAULT_ACCOUNT, DEFAULT_API_KEY, DEFAULT_DEVICE_ID, SimServer
from tests.helpers.services import VictoriaMetrics, free_port
from tests.helpers.slack_server import Answer, SlackWebhookServer

pytestmark = pytest.mark.integration

HOOK_SECRET = "s3cr3tWEBHOOKpath0123"
runner = CliRunner()


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackWebhookServer]:
    with SlackWebhookServer() as server:
        yield server


def base_env(sim: SimServer) -> dict[str, str]:
    return {
        "OCTOPUS_API_URL": sim.url,
        "OCTOPUS_API_KEY": DEFAULT_API_KEY,
        "OCTOPUS_ACCOUNT_NUMBER": DEFAULT_ACCOUNT,
    }


def online(env: dict[str, str]):
    return runner.invoke(app, ["verify-config", "--online"], env=env)


def test_local_mode_with_slack_all_ok(sim: SimServer, slack: SlackWebhookServer) -> None:
    env = base_env(sim) | {"SLACK_WEBHOOK_URL": slack.webhook_url(HOOK_SECRET)}
    result = online(env)
    assert result.exit_code == 0, result.output
    assert f"Octopus: ok — device {DEFAULT_DEVICE_ID}, latest reading 20" in result.output
    assert "InfluxDB: not configured (local mode)" in result.output
    assert "Slack: ok — test message sent" in result.output
    out = result.output
    assert out.index("Octopus: ") < out.index("InfluxDB: ") < out.index("Slack: ")  # in order
    assert "octomon test message" in slack.wait_for_posts(1)[0].body.decode()
    assert HOOK_SECRET not in result.output and DEFAULT_API_KEY not in result.output


def test_with_victoria_metrics_all_ok(sim: SimServer, victoria: VictoriaMetrics) -> None:
    env = base_env(sim) | {
        "INFLUXDB_URL": victoria.url,
        "INFLUXDB_TOKEN": "unused-by-victoria-0123456789",
        "INFLUXDB_ORG": "home",
    }
    result = online(env)
    assert result.exit_code == 0, result.output
    assert "Octopus: ok" in result.output
    assert "InfluxDB: ok — reachable" in result.output
    assert "Slack: not configured" in result.output


def test_dead_influxdb_port_exits_1(sim: SimServer) -> None:
    env = base_env(sim) | {
        "INFLUXDB_URL": f"http://127.0.0.1:{free_port()}",
        "INFLUXDB_TOKEN": "influx-token-0123456789abcdefSECRET",
        "INFLUXDB_ORG": "home",
    }
    result = online(env)
    assert result.exit_code == 1, result.output
    assert "Octopus: ok" in result.output  # every test runs, even after one fails
    assert "InfluxDB: failed — " in result.output
    assert "error: 1 connection test(s) failed" in result.output
    assert "influx-token-0123456789abcdefSECRET" not in result.output
    assert "Traceback" not in result.output


def test_refused_api_key_exits_1(sim: SimServer) -> None:
    env = base_env(sim) | {"OCTOPUS_API_KEY": "sk_live_not_the_right_key_0000"}
    result = online(env)
    assert result.exit_code == 1, result.output
    assert "Octopus: failed — authentication failed" in result.output
    assert "sk_live_not_the_right_key_0000" not in result.output


def test_slack_refusing_the_message_exits_1(sim: SimServer, slack: SlackWebhookServer) -> None:
    slack.always(Answer.channel_not_found())
    env = base_env(sim) | {"SLACK_WEBHOOK_URL": slack.webhook_url(HOOK_SECRET)}
    result = online(env)
    assert result.exit_code == 1, result.output
    assert "Slack: failed — " in result.output and "channel_not_found" in result.output
    assert HOOK_SECRET not in result.output


def test_invalid_settings_exit_2_before_any_call(sim: SimServer) -> None:
    env = base_env(sim) | {"OCTOPUS_ACCOUNT_NUMBER": "B-12"}
    result = online(env)
    assert result.exit_code == 2
    assert "OCTOPUS_ACCOUNT_NUMBER='B-12'" in result.output
    assert sim.sim.calls == []


def test_make_setup_flow_configure_then_verify_online(
    sim: SimServer, slack: SlackWebhookServer
) -> None:
    """What `make setup` runs, minus the prompts: configure writes .env, verify reads it."""
    hook = slack.webhook_url(HOOK_SECRET)
    written = runner.invoke(
        app,
        [
            "configure", "--non-interactive",
            "--octopus-api-key", DEFAULT_API_KEY,
            "--octopus-account-number", DEFAULT_ACCOUNT.lower(),
            "--influxdb-url", "",
            "--slack-webhook-url", hook,
        ],
    )  # fmt: skip
    assert written.exit_code == 0, written.output
    assert Path(".env").stat().st_mode & 0o077 == 0
    result = online({"OCTOPUS_API_URL": sim.url})  # the API URL is not a configure question
    assert result.exit_code == 0, result.output
    assert "Octopus: ok" in result.output and "Slack: ok" in result.output
