"""The outputs from the command line: no secret in any MQTT message, topic, metric or HTTP
answer at LOG_LEVEL=debug; a missing extra is one line naming it (exit 2);
``verify-config --online`` tests the broker; ``status`` shows both outputs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from octomon.daemon.status import Status
from octomon.sim import SimHomeMini, SimServer
from tests.helpers.cli import invoke
from tests.helpers.daemon import Daemon, daemon_env
from tests.helpers.mosquitto import Watcher, mosquitto
from tests.helpers.services import free_port

pytest.importorskip("paho.mqtt", reason="the octomon[mqtt] extra is not installed")
pytest.importorskip("prometheus_client", reason="the octomon[prometheus] extra is not installed")

PASSWORD = "mqtt-Secret-Pa55word-42"
JWT = re.compile(r"eyJ[\w-]{8,}")


@pytest.fixture
def sim() -> Iterator[tuple[SimHomeMini, SimServer]]:
    sim = SimHomeMini(rate_limit_per_hour=100)
    with SimServer(sim) as server:
        yield sim, server


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        return e.read().decode()


@pytest.mark.integration
@pytest.mark.slow
def test_no_secret_in_any_message_topic_metric_answer_or_log_at_debug(
    tmp_path: Path, sim: tuple[SimHomeMini, SimServer]
) -> None:
    the_sim, server = sim
    key_file = tmp_path / "octopus_api_key"
    key_file.write_text(the_sim.api_key + "\n")
    port = free_port()
    with mosquitto(tmp_path / "mqtt", password=PASSWORD) as broker:
        watcher = Watcher(broker)
        env = daemon_env(
            sim=the_sim,
            api_url=server.url,
            cache_dir=tmp_path / "cache",
            MQTT_URL=broker.url,
            HTTP_LISTEN=f"127.0.0.1:{port}",
            OCTOPUS_API_KEY_FILE=str(key_file),
            SLACK_WEBHOOK_URL="http://127.0.0.1:9/services/T000/B000/SLACKSECRETPATH123",
        )
        del env["OCTOPUS_API_KEY"]
        env["LOG_LEVEL"] = "debug"
        daemon = Daemon(env, tmp_path / "octomon.log").start()
        try:
            watcher.wait(
                lambda m: (
                    f"octomon/{the_sim.device_id}/state" in m
                    and m.get("octomon/status", (b"",))[0] == b"online"
                ),
                timeout=60,
            )
            base = f"http://127.0.0.1:{port}"
            answers = [fetch(base + p) for p in ("/metrics", "/health", "/ready", "/nope")]
            assert "octomon_demand_watts" in answers[0]
            code, _ = daemon.term()
            assert code == 0, daemon.output()
        finally:
            daemon.stop_quietly()
            watcher.close()
    seen = [t + "\n" + p.decode(errors="replace") for t, p in watcher.history]
    assert any("homeassistant/sensor/" in s for s in seen)
    everything = "\n".join(
        [*seen, *answers, daemon.output(10**7), (tmp_path / "cache" / "status.json").read_text()]
    )
    for secret in (the_sim.api_key, PASSWORD, "test-token-for-victoria", "SLACKSECRETPATH123"):
        assert secret not in everything, secret
    assert not JWT.search(everything)
    assert "DEBUG" in daemon.output(10**7)  # it did log at debug


def run_without(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``octomon ARGS`` in a Python where ``module`` cannot be imported (no extra)."""
    code = (
        f"import sys; sys.modules[{module!r}] = None; "
        "from octomon.cli import main; sys.argv = ['octomon', *sys.argv[1:]]; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    ("module", "variable", "value", "extra"),
    [
        ("paho", "MQTT_URL", "mqtt://127.0.0.1:1", "octomon[mqtt]"),
        ("prometheus_client", "HTTP_LISTEN", "127.0.0.1:1", "octomon[prometheus]"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it_exit_2(
    tmp_path: Path, module: str, variable: str, value: str, extra: str
) -> None:
    env = {
        "OCTOPUS_API_KEY": "sk_live_abcdefghijklmnopqrstuvwx1234",
        "OCTOPUS_ACCOUNT_NUMBER": "A-1234ABCD",
        "OCTOPUS_API_URL": "http://127.0.0.1:9/graphql/",
        "CACHE_DIR": str(tmp_path / "cache"),
        variable: value,
    }
    result = run_without(module, "run", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert extra in lines[0] and variable in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_verify_config_online_tests_the_broker(tmp_path: Path) -> None:
    env = {
        "OCTOPUS_API_KEY": "sk_live_abcdefghijklmnopqrstuvwx1234",
        "OCTOPUS_ACCOUNT_NUMBER": "A-1234ABCD",
        "OCTOPUS_API_URL": "http://127.0.0.1:9/graphql/",
    }
    with mosquitto(tmp_path / "mqtt", password=PASSWORD) as broker:
        watcher = Watcher(broker)
        try:
            result = invoke("verify-config", "--online", env=env | {"MQTT_URL": broker.url})
            flat = " ".join(result.output.split())
            where = f"mqtt://127.0.0.1:{broker.port}"
            assert f"MQTT: ok — connected to {where}, published to octomon/test" in flat
            watcher.wait(lambda m: "octomon/test" in m, timeout=10)
            wrong = broker.url.replace(PASSWORD, "wrong-password-here")
            result = invoke("verify-config", "--online", env=env | {"MQTT_URL": wrong})
            flat = " ".join(result.output.split())
            assert result.exit_code == 1
            assert f"MQTT: failed — MQTT broker {where} refused the connection" in flat
            assert PASSWORD not in result.output and "wrong-password-here" not in result.output
        finally:
            watcher.close()
    down = f"mqtt://127.0.0.1:{free_port()}"
    result = invoke("verify-config", "--online", env=env | {"MQTT_URL": down})
    assert "MQTT: failed — MQTT broker " in " ".join(result.output.split())


@pytest.mark.integration
def test_mqtts_verifies_the_broker_with_mqtt_ca_cert(tmp_path: Path) -> None:
    from tests.helpers.tls import self_signed

    certs = tmp_path / "tls"
    certs.mkdir()
    cert, key = self_signed(certs)
    env = {
        "OCTOPUS_API_KEY": "sk_live_abcdefghijklmnopqrstuvwx1234",
        "OCTOPUS_ACCOUNT_NUMBER": "A-1234ABCD",
        "OCTOPUS_API_URL": "http://127.0.0.1:9/graphql/",
    }
    with mosquitto(tmp_path / "mqtt", tls=(cert, key)) as broker:
        assert broker.url.startswith("mqtts://")
        where = f"mqtts://127.0.0.1:{broker.port}"
        trusted = env | {"MQTT_URL": broker.url, "MQTT_CA_CERT": str(cert)}
        result = invoke("verify-config", "--online", env=trusted)
        assert f"MQTT: ok — connected to {where}" in " ".join(result.output.split())
        result = invoke("verify-config", "--online", env=env | {"MQTT_URL": broker.url})
        flat = " ".join(result.output.split())
        assert result.exit_code == 1
        assert f"MQTT: failed — MQTT broker {where}: cannot connect" in flat
        assert "CERTIFICATE_VERIFY_FAILED" in flat or "certificate verify failed" in flat


def test_status_shows_both_outputs() -> None:
    cache_dir = Path(os.environ["CACHE_DIR"])
    cache_dir.mkdir(parents=True)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    Status(
        started_at=now,
        poll_interval=60,
        call_budget=75,
        last_good_cycle_at=now,
        pid=os.getpid(),
        outputs={
            "http": "serving http://127.0.0.1:9110/metrics",
            "mqtt": "not connected to mqtt://broker:1883 (unreachable); retrying",
        },
    ).write(cache_dir)
    result = invoke("status")
    assert result.exit_code == 0, result.output
    lines = {line.split(None, 1)[0]: line for line in result.output.splitlines() if line.strip()}
    assert "serving http://127.0.0.1:9110/metrics" in lines["HTTP"]
    assert "not connected to mqtt://broker:1883 (unreachable); retrying" in lines["MQTT"]
    data = json.loads(invoke("status", "--json").output)
    assert data["outputs"]["mqtt"].startswith("not connected")
    time.sleep(0)  # (no wall-clock dependence: the status is written "now")
