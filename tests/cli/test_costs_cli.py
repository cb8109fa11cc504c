"""`octomon costs`: bad input is one line and exit 2; plain text off a terminal."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from typer.testing import CliRunner

from octomon.cli import app
from tests.helpers.cli import set_clock
from tests.helpers.clock import ManualClock


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["costs", *args])
    return result.exit_code, result.output


def test_a_bad_date_is_one_line_and_exit_2() -> None:
    code, out = invoke("--since", "30/11/2026")
    assert code == 2
    assert out.strip() == "error: --since '30/11/2026' is not a date (YYYY-MM-DD, a UK day)"


def test_until_before_since_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    set_clock(monkeypatch, ManualClock(datetime(2026, 12, 7, 12, tzinfo=timezone.utc)))
    code, out = invoke("--since", "2026-11-30", "--until", "2026-11-01")
    assert code == 2
    assert out.strip() == "error: --until 2026-11-01 is before --since 2026-11-30"


def test_missing_settings_are_named() -> None:
    code, out = invoke()
    assert code == 2
    assert "OCTOPUS_API_KEY is required" in out and "Traceback" not in out
