"""Docs checked against the program and the repository: every command has help text and is
in the README's table, every setting in docs/configuration.md, the README stays a front page,
and the docs name no file the repository lacks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main

from octomon.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"


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


def documents() -> list[Path]:
    return [README, ROOT / "CONTRIBUTING.md", *sorted(DOCS.glob("*.md"))]


def test_every_command_has_help_text() -> None:
    for name, cmd in all_commands().items():
        assert (cmd.help or "").strip(), f"`octomon {name}` has no help text"


def test_every_command_is_documented_in_the_readme() -> None:
    text = README.read_text()
    for name in all_commands():
        assert re.search(rf"`octomon {re.escape(name)}\b", text), f"README lacks `octomon {name}`"


def test_the_readme_starts_with_installing_and_the_demo() -> None:
    text = README.read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "pipx install ." in quick and "octomon run --demo" in quick and "make demo" in quick
    assert "make test" in text


def test_the_readme_is_a_front_page() -> None:
    assert len(README.read_bytes()) <= 16 * 1024


def test_every_setting_is_in_the_configuration_page_and_env_example() -> None:
    from octomon.config import FIELDS

    page = CONFIGURATION.read_text()
    example = (ROOT / ".env.example").read_text()
    for name in FIELDS:
        assert f"`{name}`" in page, name
        assert re.search(rf"^#?\s*{name}=", example, re.M), name


def test_the_docs_cite_nothing_outside_the_repository() -> None:
    for path in documents():
        text = path.read_text()
        assert not re.search(r"SPEC\s*§|OCTOPUS_REST\.md|KRAKEN_API\.md", text), path.name


USER_MADE = {
    "deploy/octomon.env",
    "deploy/.env",
    "deploy/secrets/mqtt_url",
}  # copied from *.example


def test_every_file_the_docs_name_exists() -> None:
    named = re.compile(r"(?<![\w/.])((?:deploy|tests|bench|octomon|docs|\.ci)/[\w./-]*\w)")
    for path in documents():
        for found in set(named.findall(path.read_text())) - USER_MADE:
            assert (ROOT / found).exists(), f"{path.name} names {found}, which does not exist"


def test_every_page_the_readme_links_exists() -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README.read_text()):
        assert (ROOT / target).exists(), target
