"""Output that reads well: a command's result is not repeated by INFO log lines, and no
option value's placeholder is broken across lines at 60 columns."""

from __future__ import annotations

import pytest

from octomon.sim import SimHomeMini, SimServer
from tests.cli.test_help import tokens
from tests.helpers.cli import invoke, point_at_sim
from tests.helpers.cli_reference import command_names, help_text


@pytest.mark.integration
def test_test_octopus_says_its_result_once(monkeypatch: pytest.MonkeyPatch) -> None:
    home = SimHomeMini()
    with SimServer(home) as server:
        point_at_sim(monkeypatch, home, server)
        result = invoke("test-octopus")
    assert result.exit_code == 0, result.output
    assert "device id: " in result.output
    assert " INFO " not in result.output, result.output


@pytest.mark.parametrize("name", ["", *command_names()])
def test_no_word_is_broken_at_60_columns_but_long_option_names(name: str) -> None:
    """At 60 columns Typer may shorten a long option's name (`--octopus-account…`) in its
    narrow first column; every other word stays whole."""
    whole = set(tokens(help_text(name.split(), width=1000)))
    broken = [t for t in tokens(help_text(name.split(), width=60)) if t not in whole]
    assert all(t.startswith("--") and t.endswith("…") for t in broken), broken


def test_piped_status_is_not_padded_to_the_console_width() -> None:
    from tests.cli.test_status_cli import cache_dir, write_status

    write_status(cache_dir(), good_ago=30)
    result = invoke("status", env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("health ") for line in lines)
    assert all(line == line.rstrip() for line in lines), [
        line for line in lines if line.endswith(" ")
    ]
    assert "(a good cycle within 4 min)" in result.output
