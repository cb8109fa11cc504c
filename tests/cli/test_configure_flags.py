"""`octomon configure` through its flags: --non-interactive, exit codes, the file it writes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from octomon import config
from tests.helpers.cli import HOOK, KEY, TOKEN, invoke


def full_flags() -> list[str]:
    return [
        "--octopus-api-key", KEY,
        "--octopus-account-number", "a-1234abcd",
        "--influxdb-url", "http://127.0.0.1:8086",
        "--influxdb-token", TOKEN,
        "--influxdb-org", "home",
        "--influxdb-bucket", "power",
        "--slack-webhook-url", HOOK,
        "--poll-interval", "120",
        "--cache-dir", "./readings",
    ]  # fmt: skip


def test_non_interactive_writes_0600_under_umask_000_and_verify_config_accepts_it() -> None:
    old = os.umask(0)
    try:
        result = invoke("configure", "--non-interactive", *full_flags())
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    env = Path(".env")
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert config.read_env_file(env) == {
        "OCTOPUS_API_KEY": KEY,
        "OCTOPUS_ACCOUNT_NUMBER": "A-1234ABCD",
        "INFLUXDB_URL": "http://127.0.0.1:8086",
        "INFLUXDB_TOKEN": TOKEN,
        "INFLUXDB_ORG": "home",
        "INFLUXDB_BUCKET": "power",
        "SLACK_WEBHOOK_URL": HOOK,
        "POLL_INTERVAL_SECONDS": "120",
        "CACHE_DIR": "./readings",
    }
    assert "Wrote .env (mode 0600)" in result.output
    for secret in (KEY, TOKEN, "XXXXXXXXXXXXXXXXXXXXXXXX"):
        assert secret not in result.output
    check = invoke("verify-config")
    assert check.exit_code == 0, check.output
    assert "configuration is valid" in check.output


def test_bad_flag_values_exit_2_naming_variable_flag_and_rule() -> None:
    result = invoke(
        "configure", "--non-interactive",
        "--octopus-api-key", KEY,
        "--octopus-account-number", "B-12",
        "--poll-interval", "0",
        "--slack-webhook-url", "hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
    )  # fmt: skip
    assert result.exit_code == 2
    out = result.output
    assert (
        "OCTOPUS_ACCOUNT_NUMBER='B-12' (--octopus-account-number): must be A- followed by "
        "8 letters or digits, e.g. A-1234ABCD" in out
    )
    assert "POLL_INTERVAL_SECONDS='0' (--poll-interval): must be a whole number from 1 to 3600" in (
        out
    )
    assert "SLACK_WEBHOOK_URL='****' (--slack-webhook-url): must be an http(s) URL" in out
    assert "XXXXXXXXXXXXXXXXXXXXXXXX" not in out and KEY not in out
    assert "Traceback" not in out
    assert not Path(".env").exists()


def test_missing_required_flags_are_all_named() -> None:
    result = invoke("configure", "--non-interactive", "--influxdb-url", "http://127.0.0.1:8086")
    assert result.exit_code == 2
    for line in (
        "OCTOPUS_API_KEY is required (--octopus-api-key)",
        "OCTOPUS_ACCOUNT_NUMBER is required (--octopus-account-number)",
        "INFLUXDB_TOKEN is needed with INFLUXDB_URL (--influxdb-token)",
        "INFLUXDB_ORG is needed with INFLUXDB_URL (--influxdb-org)",
    ):
        assert line in result.output
    assert "pass the missing or corrected values as flags" in result.output
    assert not Path(".env").exists()


def test_non_interactive_keeps_the_existing_file_and_takes_missing_values_from_it() -> None:
    env = Path(".env")
    env.write_text(f"# mine\nOCTOPUS_API_KEY={KEY}\nOCTOPUS_ACCOUNT_NUMBER=A-1234ABCD\nOTHER=x\n")
    result = invoke("configure", "--non-interactive", "--poll-interval", "300")
    assert result.exit_code == 0, result.output
    assert env.read_text() == (
        f"# mine\nOCTOPUS_API_KEY={KEY}\nOCTOPUS_ACCOUNT_NUMBER=A-1234ABCD\nOTHER=x\n"
        "# Seconds between polls\nPOLL_INTERVAL_SECONDS=300\n"
    )


def test_an_invalid_value_left_in_the_file_is_named_with_where_it_came_from() -> None:
    Path(".env").write_text(f"OCTOPUS_API_KEY={KEY}\nOCTOPUS_ACCOUNT_NUMBER=12345\n")
    result = invoke("configure", "--non-interactive", "--cache-dir", "./c")
    assert result.exit_code == 2
    assert "OCTOPUS_ACCOUNT_NUMBER='12345' (from .env): must be A- followed by" in result.output
    # and a flag fixes it
    result = invoke("configure", "--non-interactive", "--octopus-account-number", "A-00000000")
    assert result.exit_code == 0, result.output
    assert config.read_env_file(Path(".env"))["OCTOPUS_ACCOUNT_NUMBER"] == "A-00000000"


def test_empty_influxdb_url_means_local_mode() -> None:
    result = invoke(
        "configure", "--non-interactive",
        "--octopus-api-key", KEY, "--octopus-account-number", "A-1234ABCD",
        "--influxdb-url", "", "--slack-webhook-url", "",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert config.read_env_file(Path(".env"))["INFLUXDB_URL"] == ""
    check = invoke("verify-config")
    assert check.exit_code == 0 and "local mode" in check.output


def test_env_file_option_chooses_the_file(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.env"
    flags = ["--octopus-api-key", KEY, "--octopus-account-number", "A-1234ABCD"]
    assert (
        invoke("configure", "--non-interactive", "--env-file", str(target), *flags).exit_code == 0
    )
    assert invoke("--env-file", str(target), "configure", "--non-interactive").exit_code == 0
    assert target.exists() and not Path(".env").exists()
    assert invoke("--env-file", str(target), "verify-config").exit_code == 0


def test_poll_interval_seconds_is_accepted_too() -> None:
    flags = ["--octopus-api-key", KEY, "--octopus-account-number", "A-1234ABCD"]
    result = invoke("configure", "--non-interactive", *flags, "--poll-interval-seconds", "30")
    assert result.exit_code == 0, result.output
    assert config.read_env_file(Path(".env"))["POLL_INTERVAL_SECONDS"] == "30"


def test_off_a_terminal_it_asks_for_flags() -> None:
    result = invoke("configure")  # CliRunner's stdin is not a terminal
    assert result.exit_code == 2
    assert "stdin is not one" in result.output and "--non-interactive" in result.output
    assert not Path(".env").exists()


def test_bad_flags_exit_2_before_any_question() -> None:
    result = invoke("configure", "--octopus-account-number", "nope")
    assert result.exit_code == 2
    assert "OCTOPUS_ACCOUNT_NUMBER='nope' (--octopus-account-number)" in result.output


def test_unwritable_target_is_one_clear_line(tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / ".env"
    flags = ["--octopus-api-key", KEY, "--octopus-account-number", "A-1234ABCD"]
    result = invoke("configure", "--non-interactive", "--env-file", str(target), *flags)
    assert result.exit_code == 1
    assert f"error: cannot write {target}: No such file or directory" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["--help"], ["configure", "--help"]])
def test_help_does_not_import_questionary(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from octomon.cli import app\n"
        f"r = CliRunner().invoke(app, {args!r})\n"
        "assert r.exit_code == 0, r.output\n"
        "print('questionary' in sys.modules, 'prompt_toolkit' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False False"


def test_every_question_has_its_flag_in_the_same_order() -> None:
    from octomon.cli.configure import FLAGS
    from octomon.cli.wizard import QUESTIONS

    assert tuple(FLAGS) == QUESTIONS
    help_text = invoke("configure", "--help").output
    for flag in FLAGS.values():
        assert flag in help_text
