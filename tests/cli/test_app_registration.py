"""`main()` registers only the invoked command's module; everything else sees every command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from octomon.cli import MODULES, command_for, make_app, modules_for


@pytest.mark.parametrize(
    ("argv", "modules"),
    [
        (["cache", "status", "--json"], ("cache",)),
        (["--env-file", "x.env", "status", "--check"], ("status",)),
        (["--env-file=x.env", "test-slack"], ("checks",)),
        (["sync-cache"], ("cache",)),
        (["--help"], MODULES),
        ([], MODULES),
        (["--version"], MODULES),
        (["no-such-command"], MODULES),
    ],
)
def test_modules_for(argv: list[str], modules: tuple[str, ...]) -> None:
    assert modules_for(argv, {}) == modules


def test_completion_sees_every_command() -> None:
    assert modules_for(["cache"], {"_OCTOMON_COMPLETE": "complete_bash"}) == MODULES


def test_a_typo_still_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "octomon", "cache-status"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "No such command" in result.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "octomon", "--help"], capture_output=True, text=True
    ).stdout
    for command in ("run", "configure", "sync-cache", "backfill", "status", "cache"):
        assert command in help_text


def test_only_the_invoked_command_is_registered() -> None:
    import typer.main

    group = typer.main.get_command(make_app(("cache",), command_for(["cache", "status"], {})))
    assert sorted(group.commands) == ["cache"]
    group = typer.main.get_command(make_app(("checks",), "test-slack"))
    assert sorted(group.commands) == ["test-slack"]
