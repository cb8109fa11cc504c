"""SPEC §5: at LOG_LEVEL=debug no command prints a configured secret or a Kraken token.

Every command runs as a real subprocess against the simulator, a real VictoriaMetrics and a
loopback Slack webhook (and once more with InfluxDB and Slack unreachable, so the error
paths are searched too); stdout and stderr are searched for every secret.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from octomon.sim import DEFAULT_ACCOUNT, SimHomeMini, SimServer
from tests.helpers.services import VictoriaMetrics, free_port
from tests.helpers.sim_faults import FaultySim
from tests.helpers.slack_server import SlackWebhookServer

pytestmark = pytest.mark.integration

API_KEY = "sk_live_leakcheck0123456789abcdefXYZ"
INFLUX_TOKEN = "influx-secret-token-0123456789abcdef"
HOOK_SECRET = "hooksecret0123456789ABCDEF"


@pytest.fixture
def sim() -> Iterator[tuple[SimHomeMini, SimServer]]:
    model = FaultySim(api_key=API_KEY)
    with SimServer(model) as server:
        yield model, server


def octomon(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "octomon", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )


COMMANDS: list[list[str]] = [
    ["verify-config"],
    ["verify-config", "--online"],
    ["test-octopus"],
    ["test-influx", "--write-test-point"],
    ["test-slack"],
    ["run", "--once"],
    ["sync-cache"],
    ["cache", "status", "--json"],
    ["cache", "export", "--format", "line-protocol"],
    ["status"],
    ["tariff", "--json"],
    ["tariff", "--since", "2026-11-20"],
    ["backfill", "--since", "2020-01-01T00:00:00Z", "--until", "2020-01-02T00:00:00Z"],  # too old
    [
        "configure",
        "--non-interactive",
        "--octopus-api-key",
        API_KEY,
        "--octopus-account-number",
        DEFAULT_ACCOUNT,
    ],
]


def secrets_in(text: str, tokens: list[str]) -> list[str]:
    found = [s for s in [API_KEY, INFLUX_TOKEN, HOOK_SECRET, *tokens] if s and s in text]
    return found


@pytest.mark.parametrize("influx_up", [True, False], ids=["services-up", "services-down"])
def test_no_command_prints_a_secret_at_debug(
    sim: tuple[SimHomeMini, SimServer], tmp_path: Path, influx_up: bool
) -> None:
    model, server = sim
    vm: VictoriaMetrics | None = None
    slack = SlackWebhookServer().start()
    try:
        if influx_up:
            vm = VictoriaMetrics(tmp_path / "vm").start()
            influx_url = vm.url
            hook = slack.webhook_url(HOOK_SECRET)
        else:
            influx_url = f"http://127.0.0.1:{free_port()}"  # nothing listens
            hook = f"http://127.0.0.1:{free_port()}/services/T000/B000/{HOOK_SECRET}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OCTOPUS_", "INFLUX"))}
        env.update(
            OCTOPUS_API_KEY=API_KEY,
            OCTOPUS_ACCOUNT_NUMBER=DEFAULT_ACCOUNT,
            OCTOPUS_API_URL=server.url,
            OCTOPUS_REST_URL=server.rest_url,
            INFLUXDB_URL=influx_url,
            INFLUXDB_TOKEN=INFLUX_TOKEN,
            INFLUXDB_ORG="home",
            SLACK_WEBHOOK_URL=hook,
            CACHE_DIR=str(tmp_path / "cache"),
            LOG_LEVEL="debug",
            POLL_INTERVAL_SECONDS="60",
        )
        work = tmp_path / "work"
        work.mkdir()
        outputs: list[tuple[list[str], str]] = []
        for args in COMMANDS:
            result = octomon(args, env, work)
            outputs.append((args, result.stdout + result.stderr))
            assert "Traceback" not in result.stdout, (args, result.stdout)
        # the tokens the simulator handed out during all of that
        tokens = model.issued_secrets()
        assert model.calls, "the commands never reached the simulator"
        for args, text in outputs:
            leaked = secrets_in(text, tokens)
            assert not leaked, f"`octomon {' '.join(args)}` printed a secret: {leaked}"
        assert (work / ".env").exists()
        assert API_KEY not in "".join(t for _, t in outputs)
    finally:
        slack.stop()
        if vm is not None:
            vm.stop()
