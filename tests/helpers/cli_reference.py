"""docs/cli-reference.md, generated from every command's ``--help`` at 80 columns.

``python -m tests.helpers.cli_reference`` rewrites the file; ``tests/cli/test_cli_reference.py``
fails when a command's help changed without it (sqlite-utils checks its reference the same
way).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "cli-reference.md"
WIDTH = 80

HEADER = """# CLI reference

Every command's `--help`, as printed on an 80-column terminal. This page is generated:
`python -m tests.helpers.cli_reference` rewrites it, and a test fails when a command's help
changed without it.
"""


def command_names() -> list[str]:
    """Every command line with its own help: the groups' subcommands included, in --help order."""
    import typer.main

    from octomon.cli import app

    root: Any = typer.main.get_command(app)
    names: list[str] = []
    for name, cmd in root.commands.items():
        names.append(name)
        if hasattr(cmd, "commands"):  # a group (typer vendors click, so no isinstance)
            names.extend(f"{name} {sub}" for sub in cmd.commands)
    return names


def help_text(args: list[str], width: int = WIDTH) -> str:
    """``octomon ARGS --help`` as plain text at ``width`` columns."""
    import typer.rich_utils
    from typer.testing import CliRunner

    from octomon.cli import app

    saved = typer.rich_utils.MAX_WIDTH, typer.rich_utils.FORCE_TERMINAL
    typer.rich_utils.MAX_WIDTH, typer.rich_utils.FORCE_TERMINAL = width, None
    try:
        result = CliRunner().invoke(app, [*args, "--help"], prog_name="octomon", env={})
    finally:
        typer.rich_utils.MAX_WIDTH, typer.rich_utils.FORCE_TERMINAL = saved
    if result.exit_code != 0:
        raise RuntimeError(f"octomon {' '.join(args)} --help exited {result.exit_code}")
    return "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())


def render() -> str:
    parts = [HEADER]
    for name in ["", *command_names()]:
        title = f"octomon {name}".strip()
        parts.append(f"\n## {title}\n\n```text\n{help_text(name.split())}\n```\n")
    return "".join(parts)


def main() -> int:
    REFERENCE.write_text(render())
    print(f"wrote {REFERENCE.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
