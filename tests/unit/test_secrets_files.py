"""Secrets from files (SPEC §2): ``NAME_FILE`` for each secret variable — Docker and
Kubernetes secrets. ``verify-config`` shows the source as ``file`` (masked); both set, or
an unreadable file, is exit 2 naming what is wrong; ``configure`` leaves the file alone;
``test-octopus`` and ``run`` use the key from the file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from octomon import config
from octomon.errors import ConfigError
from octomon.sim import DEFAULT_ACCOUNT, DEFAULT_API_KEY, SimHomeMini, SimServer
from tests.helpers.cli import KEY, TOKEN, invoke

OCTOMON = str(Path(sys.executable).with_name("octomon"))


def secret_file(tmp_path: Path, name: str, value: str, end: str = "\n") -> Path:
    path = tmp_path / name
    path.write_text(value + end)
    path.chmod(0o600)
    return path


def rows(output: str) -> dict[str, list[str]]:
    out = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) >= 4 and cells[1]:
            out[cells[1]] = cells[2:4]
    return out


def test_each_secret_may_come_from_a_file_one_trailing_newline_dropped(tmp_path: Path) -> None:
    environ = {
        "OCTOPUS_API_KEY_FILE": str(secret_file(tmp_path, "key", KEY)),
        "OCTOPUS_ACCOUNT_NUMBER": "A-1234ABCD",
        "INFLUXDB_URL": "http://127.0.0.1:8086",
        "INFLUXDB_TOKEN_FILE": str(secret_file(tmp_path, "token", TOKEN, "\r\n")),
        "INFLUXDB_ORG": "home",
        "SLACK_WEBHOOK_URL_FILE": str(secret_file(tmp_path, "hook", "https://hooks.slack.com/x/y")),
        "MQTT_URL_FILE": str(secret_file(tmp_path, "mqtt", "mqtt://u:pass-word-123@broker:1883")),
    }
    s = config.load(environ=environ)
    assert s.octopus_api_key == KEY
    assert s.influxdb_token == TOKEN
    assert s.slack_webhook_url == "https://hooks.slack.com/x/y"
    assert s.mqtt_url == "mqtt://u:pass-word-123@broker:1883"
    for name in ("OCTOPUS_API_KEY", "INFLUXDB_TOKEN", "SLACK_WEBHOOK_URL", "MQTT_URL"):
        assert s.sources[name] == "file"
    from octomon import redact

    assert "pass-word-123" not in redact.scrub("broker said: pass-word-123")


def test_a_file_in_dot_env_works_too(tmp_path: Path) -> None:
    Path(".env").write_text(f"OCTOPUS_API_KEY_FILE={secret_file(tmp_path, 'key', KEY)}\n")
    s = config.load(groups=("octopus",), environ={"OCTOPUS_ACCOUNT_NUMBER": "A-1234ABCD"})
    assert s.octopus_api_key == KEY and s.sources["OCTOPUS_API_KEY"] == "file"


def test_both_set_is_one_problem_naming_both(tmp_path: Path) -> None:
    environ = {
        "OCTOPUS_API_KEY": KEY,
        "OCTOPUS_API_KEY_FILE": str(secret_file(tmp_path, "key", KEY)),
        "OCTOPUS_ACCOUNT_NUMBER": "A-1234ABCD",
    }
    with pytest.raises(ConfigError) as err:
        config.load(groups=("octopus",), environ=environ)
    assert err.value.problems == [
        "OCTOPUS_API_KEY and OCTOPUS_API_KEY_FILE are both set: keep one of them"
    ]


def test_verify_config_shows_file_masked_and_names_both_or_the_missing_file(
    tmp_path: Path,
) -> None:
    key_file = secret_file(tmp_path, "key", KEY)
    env = {"OCTOPUS_API_KEY_FILE": str(key_file), "OCTOPUS_ACCOUNT_NUMBER": "a-1234abcd"}
    result = invoke("verify-config", env=env)
    assert result.exit_code == 0, result.output
    assert rows(result.output)["OCTOPUS_API_KEY"] == ["sk_l…1234", "file"]
    assert KEY not in result.output

    result = invoke("verify-config", env=env | {"OCTOPUS_API_KEY": KEY})
    assert result.exit_code == 2
    assert "OCTOPUS_API_KEY and OCTOPUS_API_KEY_FILE are both set" in result.output
    assert KEY not in result.output

    missing = tmp_path / "no-such-secret"
    result = invoke("verify-config", env=env | {"OCTOPUS_API_KEY_FILE": str(missing)})
    assert result.exit_code == 2
    assert f"OCTOPUS_API_KEY_FILE={missing}: no such file" in result.output.replace("\n", "")
    assert "Traceback" not in result.output


def test_an_unreadable_file_names_the_variable_and_the_path(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        directory = tmp_path / "a-directory"
        directory.mkdir()
        target, rule = directory, "is a directory, not a file"
    else:
        target = secret_file(tmp_path, "key", KEY)
        target.chmod(0)
        rule = "cannot be read (Permission denied)"
    with pytest.raises(ConfigError) as err:
        config.load(
            groups=("octopus",),
            environ={"OCTOPUS_API_KEY_FILE": str(target), "OCTOPUS_ACCOUNT_NUMBER": "A-1234ABCD"},
        )
    assert err.value.problems == [f"OCTOPUS_API_KEY_FILE={target}: {rule}"]


def test_a_command_that_does_not_use_the_secret_ignores_its_file(tmp_path: Path) -> None:
    s = config.load(groups=("cache",), environ={"INFLUXDB_TOKEN_FILE": str(tmp_path / "nope")})
    assert s.influxdb_token is None


def test_configure_leaves_a_file_secret_alone(tmp_path: Path) -> None:
    key_file = secret_file(tmp_path, "key", KEY)
    Path(".env").write_text(f"OCTOPUS_API_KEY_FILE={key_file}\n")
    result = invoke("configure", "--non-interactive", "--octopus-account-number", "A-00000000")
    assert result.exit_code == 0, result.output
    text = Path(".env").read_text()
    assert f"OCTOPUS_API_KEY_FILE={key_file}\n" in text
    assert "OCTOPUS_API_KEY=" not in text
    assert invoke("verify-config").exit_code == 0

    result = invoke("configure", "--non-interactive", "--octopus-api-key", KEY)
    assert result.exit_code == 2
    assert "OCTOPUS_API_KEY comes from OCTOPUS_API_KEY_FILE" in result.output
    assert "OCTOPUS_API_KEY=" not in Path(".env").read_text()


@pytest.fixture
def served() -> Iterator[SimServer]:
    with SimServer(SimHomeMini()) as srv:
        yield srv


@pytest.mark.integration
def test_test_octopus_and_run_once_use_the_key_from_the_file(
    tmp_path: Path, served: SimServer
) -> None:
    env = {
        "OCTOPUS_API_KEY_FILE": str(secret_file(tmp_path, "key", DEFAULT_API_KEY)),
        "OCTOPUS_ACCOUNT_NUMBER": DEFAULT_ACCOUNT,
        "OCTOPUS_API_URL": served.url,
        "OCTOPUS_REST_URL": served.rest_url,
    }
    result = invoke("test-octopus", env=env)
    assert result.exit_code == 0, result.output
    assert "Octopus API ok" in result.output
    assert DEFAULT_API_KEY not in result.output

    full = {**os.environ, **env, "CACHE_DIR": str(tmp_path / "cache"), "LOG_LEVEL": "debug"}
    run = subprocess.run(
        [OCTOMON, "run", "--once"], env=full, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert DEFAULT_API_KEY not in run.stdout + run.stderr
