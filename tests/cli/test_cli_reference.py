"""docs/cli-reference.md is every command's --help as the program prints it today."""

from __future__ import annotations

import difflib

from tests.helpers.cli_reference import REFERENCE, command_names, render


def test_the_cli_reference_matches_every_commands_help() -> None:
    expected = render()
    current = REFERENCE.read_text()
    if current != expected:
        diff = "".join(
            difflib.unified_diff(
                current.splitlines(True), expected.splitlines(True), "docs", "--help", n=1
            )
        )
        raise AssertionError(
            "docs/cli-reference.md is out of date: run `python -m tests.helpers.cli_reference`"
            f"\n{diff[:3000]}"
        )


def test_the_reference_has_a_section_per_command() -> None:
    text = REFERENCE.read_text()
    for name in ["", *command_names()]:
        assert f"\n## octomon {name}".rstrip() + "\n" in text, name
