"""`octomon test-slack` against a loopback webhook: exit codes, Slack's reason, no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from octomon.cli import app
from tests.helpers.services import free_port
from tests.helpers.slack_server import Answer, SlackWebhookServer

SECRET = "Zq9SECRETpathPART7xW2"
SECRET_PATH = f"/services/T000/B000/{SECRET}"
OCTOMON = Path(sys.executable).parent / "octomon"

runner = CliRunner()

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[SlackWebhookServer]:
    with SlackWebhookServer() as s:
        yield s


def invoke(url: str, **env: str):
    return runner.invoke(app, ["test-slack"], env={"SLACK_WEBHOOK_URL": url, **env})


def assert_no_secret(text: str) -> None:
    assert SECRET not in text
    assert SECRET_PATH not in text
    assert "T000/B000" not in text


def test_ok(server: SlackWebhookServer) -> None:
    result = invoke(server.webhook_url(SECRET))
    assert result.exit_code == 0, result.output
    assert "Slack ok — test message sent" in result.output
    (post,) = server.posts
    assert post.path == SECRET_PATH
    assert post.json["blocks"][0]["text"]["text"] == ":information_source: octomon test message"
    assert "octomon test-slack" in post.json["text"]  # clearly labelled as a test
    assert_no_secret(str(post.json))  # the message shows the webhook masked too
    assert_no_secret(result.output)


def test_rate_limited_once_then_ok(server: SlackWebhookServer) -> None:
    server.respond(Answer.rate_limited(1))
    result = invoke(server.webhook_url(SECRET))
    assert result.exit_code == 0, result.output
    assert result.output == "Slack ok — test message sent\n"
    first, second = server.posts
    assert second.at - first.at >= 1.0


@pytest.mark.parametrize(
    ("answer", "line"),
    [
        (
            Answer.channel_not_found(),
            "channel_not_found (HTTP 404) — the webhook's channel was deleted",
        ),
        (Answer.archived(), "channel_is_archived (HTTP 410) — the webhook's channel is archived"),
        (Answer.server_error(), "server error (HTTP 500) — Slack is having trouble"),
        (Answer.forbidden("invalid_token"), "invalid_token (HTTP 403) — the webhook is no longer"),
        (Answer.no_service(), "no_service (HTTP 404) — the webhook was removed or revoked"),
    ],
)
def test_failures_exit_1_naming_the_reason(
    server: SlackWebhookServer, answer: Answer, line: str
) -> None:
    server.always(answer)
    result = invoke(server.webhook_url(SECRET))
    assert result.exit_code == 1
    assert (
        "error: Slack did not accept the test message via http://127.0.0.1/…: " + line
        in " ".join(result.output.split())
    )
    assert "Traceback" not in result.output
    assert_no_secret(result.output)


def test_nothing_listening() -> None:
    result = invoke(f"http://127.0.0.1:{free_port()}{SECRET_PATH}")
    assert result.exit_code == 1
    assert "connection refused — check network access to Slack" in result.output
    assert_no_secret(result.output)


def test_without_a_webhook_is_a_config_error() -> None:
    result = runner.invoke(app, ["test-slack"])
    assert result.exit_code == 2
    assert "SLACK_WEBHOOK_URL is required" in result.output


def test_bad_webhook_url_is_a_config_error() -> None:
    result = invoke("hooks.slack.com" + SECRET_PATH)
    assert result.exit_code == 2
    assert "must be an http(s) URL" in result.output


def _run_cli(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LOG_"))}
    env |= {"SLACK_WEBHOOK_URL": url, "LOG_LEVEL": "debug"}
    return subprocess.run(
        [str(OCTOMON), "test-slack"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("answer", [Answer.ok(), Answer.channel_not_found()])
def test_real_command_at_debug_never_shows_the_webhook_path(
    server: SlackWebhookServer, tmp_path: Path, answer: Answer
) -> None:
    if not OCTOMON.exists():
        pytest.fail(f"{OCTOMON} is missing: install the package into the venv")
    server.always(answer)
    proc = _run_cli(server.webhook_url(SECRET), tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == (0 if answer.status == 200 else 1), output
    assert len(server.posts) == 1
    # the debug log really ran, including urllib3's request line (which names the path)
    assert "DEBUG" in output and '"POST /…' in output, output
    assert_no_secret(output)
