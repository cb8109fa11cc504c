"""`--help` at 80 columns: grouped, the demo named, one placeholder per kind of value,
--env-file in one place, and no word broken across lines."""

from __future__ import annotations

import re

import pytest

from tests.helpers.cli_reference import command_names, help_text

BOX = "│╭╮╰╯─"
PLACEHOLDER = re.compile(r"^│\s+(?:\*\s+)?(--[\w-]+)(?:\s+-\w)?\s+([A-Z<][\w<>|.-]*)?\s")


def tokens(text: str) -> list[str]:
    return [t for t in (w.strip(BOX) for w in text.split()) if t]


def test_the_top_level_help_groups_the_commands_and_names_the_demo() -> None:
    text = help_text([])
    panels = re.findall(r"╭─ ([\w-]+(?: [\w-]+)*) ─", text)
    assert panels == ["Options", "Set-up", "Checks", "Running", "Reports", "Cache"]
    assert "octomon run --demo" in " ".join(text.split())


@pytest.mark.parametrize("name", ["", *command_names()])
def test_no_word_is_broken_across_lines_at_80_columns(name: str) -> None:
    """Every word printed at 80 columns is a word of the same help printed unwrapped."""
    narrow = help_text(name.split(), width=80)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    whole = set(tokens(help_text(name.split(), width=1000)))
    broken = [t for t in tokens(narrow) if t not in whole]
    assert not broken, f"octomon {name} --help breaks words: {broken}"


@pytest.mark.parametrize("name", command_names())
def test_env_file_is_the_last_option_before_help(name: str) -> None:
    options = re.findall(r"^│\s+(?:\*\s+)?(--[\w-]+)", help_text(name.split()), re.M)
    if "--env-file" in options:
        assert options[-2:] == ["--env-file", "--help"], options


@pytest.mark.parametrize("name", command_names())
def test_placeholders_are_words_in_capitals(name: str) -> None:
    """DATE, PATH, SECONDS …: no `<str>`, no TEXT for a number, no `<path>`."""
    for line in help_text(name.split()).splitlines():
        found = PLACEHOLDER.match(line)
        if found and found.group(2):
            placeholder = found.group(2)
            assert not placeholder.startswith("<") or "|" in placeholder, line
            assert placeholder not in ("TEXT", "INTEGER"), line
    text = help_text(name.split())
    for option in ("--since", "--until"):
        if re.search(rf"│\s+(?:\*\s+)?{option}\s", text):
            assert re.search(rf"{option}\s+DATE\b", text), (name, option)
