"""The command octomon suggests for running itself again works in another shell."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from octomon.cli import ui


def _script(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "octomon"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return script


def test_plain_octomon_when_path_finds_the_same_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _script(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(script.parent))
    assert ui.own_command(str(script)) == "octomon"


def test_the_full_path_when_path_finds_no_octomon_or_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _script(tmp_path / "venv bin")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert ui.own_command(str(script)) == f"'{script}'"
    other = _script(tmp_path / "other")
    monkeypatch.setenv("PATH", str(other.parent))
    assert ui.own_command(str(script)) == f"'{script}'"


def test_python_dash_m_is_suggested_as_such() -> None:
    assert ui.own_command("/x/octomon/__main__.py") == f"{sys.executable} -m octomon"
