"""Docs checked against the program: every command has help text and is in the README."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main

from octomon.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def all_commands() -> dict[str, Any]:
    root: Any = typer.main.get_command(app)
    found: dict[str, Any] = {}
    for name, cmd in root.commands.items():
        if hasattr(cmd, "commands"):  # a group (typer vendors click, so no isinstance)
            for sub, subcmd in cmd.commands.items():
                found[f"{name} {sub}"] = subcmd
        else:
            found[name] = cmd
    return found


def test_every_command_has_help_text() -> None:
    for name, cmd in all_commands().items():
        assert (cmd.help or "").strip(), f"`octomon {name}` has no help text"


def test_every_command_is_documented_in_the_readme() -> None:
    text = README.read_text()
    for name in all_commands():
        assert re.search(rf"`octomon {re.escape(name)}\b", text), f"README lacks `octomon {name}`"


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "make demo" in quick and "make test" in quick


def test_every_setting_is_in_the_readme_and_env_example() -> None:
    from octomon.config import FIELDS

    readme = README.read_text()
    example = (README.parent / ".env.example").read_text()
    for name in FIELDS:
        assert f"`{name}`" in readme, name
        assert re.search(rf"^#?\s*{name}=", example, re.M), name
