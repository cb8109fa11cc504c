"""Running octomon's whole Typer app in-process, and the secrets the CLI tests configure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from typer.testing import CliRunner, Result

KEY = "sk_live_abcdefghijklmnopqrstuvwx1234"
TOKEN = "influx-token-0123456789abcdefSECRET"
HOOK = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"

_runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """``octomon ARGS`` with ``env`` added to the (test-isolated) environment."""
    from octomon.cli import app

    return _runner.invoke(app, list(args), env=env)


def point_at_sim(monkeypatch: pytest.MonkeyPatch, home: Any, server: Any) -> None:
    """The account settings of a command run against the simulator (GraphQL and REST)."""
    monkeypatch.setenv("OCTOPUS_API_KEY", home.api_key)
    monkeypatch.setenv("OCTOPUS_ACCOUNT_NUMBER", home.account_number)
    monkeypatch.setenv("OCTOPUS_API_URL", server.url)
    monkeypatch.setenv("OCTOPUS_REST_URL", server.rest_url)


def set_clock(monkeypatch: pytest.MonkeyPatch, clock: Callable[[], datetime]) -> None:
    """The ``now`` every CLI command reads (``octomon.clock.command_clock``) for this test."""
    monkeypatch.setattr("octomon.clock.command_clock", clock)
