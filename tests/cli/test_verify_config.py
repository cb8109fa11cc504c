"""`octomon verify-config`: exit codes, every problem named, precedence, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import HOOK, KEY, TOKEN, invoke


def valid_env() -> dict[str, str]:
    return {
        "OCTOPUS_API_KEY": KEY,
        "OCTOPUS_ACCOUNT_NUMBER": "a-1234abcd",
        "INFLUXDB_URL": "http://127.0.0.1:8086",
        "INFLUXDB_TOKEN": TOKEN,
        "INFLUXDB_ORG": "home",
        "SLACK_WEBHOOK_URL": HOOK,
    }


def test_missing_key_and_account_are_both_named() -> None:
    result = invoke("verify-config")
    assert result.exit_code == 2
    assert "OCTOPUS_API_KEY is required" in result.output
    assert "OCTOPUS_ACCOUNT_NUMBER is required" in result.output
    assert "Traceback" not in result.output


def test_bad_account_and_bad_interval_are_both_named() -> None:
    env = {"OCTOPUS_API_KEY": KEY, "OCTOPUS_ACCOUNT_NUMBER": "B-12", "POLL_INTERVAL_SECONDS": "abc"}
    result = invoke("verify-config", env=env)
    assert result.exit_code == 2
    assert "OCTOPUS_ACCOUNT_NUMBER='B-12': must be A- followed by 8 letters or digits" in (
        result.output
    )
    assert "POLL_INTERVAL_SECONDS='abc': must be a whole number from 1 to 3600" in result.output


def test_valid_set_exits_0_and_shows_no_secret() -> None:
    result = invoke("verify-config", env=valid_env())
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    assert TOKEN not in result.output
    assert "XXXXXXXXXXXXXXXXXXXXXXXX" not in result.output
    assert "sk_l…1234" in result.output
    assert "https://hooks.slack.com/…" in result.output
    assert "A-1234ABCD" in result.output  # stored upper-case
    assert "configuration is valid" in result.output


def test_environment_beats_env_file(tmp_path: Path) -> None:
    env_file = Path(".env")
    env_file.write_text("POLL_INTERVAL_SECONDS=120\nINFLUXDB_ORG=from-file\nCACHE_MAX_MB=5\n")
    env = valid_env() | {"POLL_INTERVAL_SECONDS": "90"}
    result = invoke("verify-config", env=env)
    assert result.exit_code == 0, result.output
    lines = {
        line.split("│")[1].strip(): line
        for line in result.output.splitlines()
        if line.count("│") >= 4
    }
    assert "90" in lines["POLL_INTERVAL_SECONDS"] and "env" in lines["POLL_INTERVAL_SECONDS"]
    assert "120" not in lines["POLL_INTERVAL_SECONDS"]
    assert "home" in lines["INFLUXDB_ORG"]  # the environment's value, not the file's
    assert ".env" in lines["CACHE_MAX_MB"]
    assert "default" in lines["HEALTH_CHECK_SECONDS"]


def test_explicit_missing_env_file_is_an_error() -> None:
    result = invoke("--env-file", "nope.env", "verify-config", env=valid_env())
    assert result.exit_code == 2
    assert "--env-file nope.env: no such file" in result.output


def test_secrets_masked_in_errors() -> None:
    env = valid_env() | {"INFLUXDB_URL": "not a url", "OCTOPUS_MAX_CALLS_PER_HOUR": "500"}
    result = invoke("verify-config", env=env)
    assert result.exit_code == 2
    assert "INFLUXDB_URL='not a url': must be an http(s) URL" in result.output
    assert "OCTOPUS_MAX_CALLS_PER_HOUR='500': must be a whole number from 1 to 100" in (
        result.output
    )
    assert KEY not in result.output and TOKEN not in result.output


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("OCTOPUS_API_URL", "ftp://x", "must be an http(s) URL"),
        ("CACHE_MAX_MB", "0", "must be a number greater than 0"),
        ("HEALTH_CHECK_SECONDS", "0", "must be a whole number from 1 to 3600"),
        ("LOG_LEVEL", "loud", "must be one of debug, info, warning, error"),
        ("SLACK_WEBHOOK_URL", "hooks.slack.com/x", "must be an http(s) URL"),
    ],
)
def test_each_rule(name: str, value: str, rule: str) -> None:
    result = invoke("verify-config", env=valid_env() | {name: value})
    assert result.exit_code == 2
    assert rule in result.output


def test_cache_dir_rules(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = invoke("verify-config", env=valid_env() | {"CACHE_DIR": str(a_file)})
    assert result.exit_code == 2
    assert "exists and is not a directory" in result.output
    # not existing under a writable parent is fine, and validation creates nothing
    target = tmp_path / "new" / "deeper"
    result = invoke("verify-config", env=valid_env() | {"CACHE_DIR": str(target)})
    assert result.exit_code == 0, result.output
    assert not target.exists() and not (tmp_path / "new").exists()


def test_warnings_for_interval_over_budget_and_key_shape() -> None:
    env = valid_env() | {"POLL_INTERVAL_SECONDS": "30", "OCTOPUS_API_KEY": "not-a-live-key-123"}
    result = invoke("verify-config", env=env)
    assert result.exit_code == 0
    assert "needs about 122 API calls an hour" in result.output
    assert "does not look like an Octopus API key" in result.output


def test_version_and_help() -> None:
    assert invoke("--version").output.startswith("octomon ")
    assert invoke("verify-config", "--help").exit_code == 0
