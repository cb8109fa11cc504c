"""Editing a ``.env`` file without losing what the user wrote in it.

``configure`` rewrites only the variables it asked about: comments, blank lines, unknown
variables, ``export`` prefixes and the order of the file are kept, and a variable that
was not there yet is appended with a short comment. The file is parsed with
python-dotenv's own parser, so what we read is exactly what ``config.load`` reads, and
every value we write is quoted so that python-dotenv reads it back unchanged.

Writing goes through :func:`octomon.fsutil.atomic_write`: the new file is created 0600
from its first byte (whatever the umask) and renamed over the old one.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from octomon.fsutil import atomic_write

_UNQUOTED_OK = re.compile(r"[A-Za-z0-9_.,:/@%+=~\-]+")
_EXPORT = re.compile(r"export[^\S\r\n]+")
HEADER = (
    "# octomon settings, written by `octomon configure`. The environment wins over this file.\n"
    "# `octomon verify-config` shows what is in effect. Keep this file private (mode 0600).\n"
)


def read_values(path: Path, label: str | None = None) -> tuple[dict[str, str], list[str]]:
    """The KEY=value pairs of the settings file at ``path`` as python-dotenv reads them
    (empty values kept as ""), and a problem for each thing wrong with it: missing, not a
    file, unreadable, not UTF-8, and each damaged line by its number. python-dotenv's own
    warning about a damaged line is not printed: the problem says it, once, with the line.
    ``label`` names the file in the problems about the whole file (``--env-file PATH``).
    """
    label = label or str(path)
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}, [f"{label}: no such file"]
    except IsADirectoryError:
        return {}, [f"{label}: is a directory, not a settings file"]
    except OSError as exc:
        return {}, [f"{label}: cannot be read ({exc.strerror or exc})"]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return {}, [f"{path} line {line}: not UTF-8 text (save the file as UTF-8)"]
    problems: list[str] = []
    kept: list[str] = []
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original
        if not binding.error:
            kept.append(original.string)
            continue
        lines = original.string.rstrip("\n").count("\n")
        if lines:  # an opening quote that is never closed swallows the lines after it
            last = original.line + lines
            problems.append(
                f"{path} line {original.line}: a quote is never closed "
                f"(lines {original.line}-{last} were not read)"
            )
        else:
            problems.append(f"{path} line {original.line}: not NAME=value")
    values = dotenv_values(stream=io.StringIO("".join(kept)))
    return {k: (v or "") for k, v in values.items()}, problems


def check_value(value: str) -> None:
    """Raise ``ValueError(rule)`` for a value a .env file cannot hold faithfully.

    python-dotenv expands ``${NAME}`` in every value, quoted or not, and a line break
    would make the file hard to read and edit by hand.
    """
    if "${" in value:
        raise ValueError("must not contain ${ (a .env file would expand it)")
    if any(c in value for c in "\r\n\x00"):
        raise ValueError("must be a single line")


def quote(value: str) -> str:
    """The value as python-dotenv reads it back exactly (single quotes when needed)."""
    if value == "" or _UNQUOTED_OK.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_line(key: str, value: str, export: bool = False) -> str:
    return f"{'export ' if export else ''}{key}={quote(value)}\n"


@dataclass
class _Chunk:
    """One binding (or comment, blank or unparseable line) exactly as it was in the file."""

    text: str
    key: str | None = None


class EnvFile:
    """A .env file held as its original chunks; :meth:`set` edits in place."""

    def __init__(self, text: str = "", path: Path | None = None, existed: bool = False) -> None:
        from dotenv.parser import parse_stream

        self.path = path
        self.existed = existed
        self._chunks = [_Chunk(b.original.string, b.key) for b in parse_stream(io.StringIO(text))]

    @classmethod
    def read(cls, path: Path) -> EnvFile:
        """The file at ``path``, or an empty one if there is none (raises other OSErrors)."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls("", path)
        return cls(text, path, existed=True)

    def values(self) -> dict[str, str]:
        """What python-dotenv (and so ``config.load``) reads from this content."""
        from dotenv import dotenv_values

        return {k: (v or "") for k, v in dotenv_values(stream=io.StringIO(self.render())).items()}

    def keys(self) -> list[str]:
        return [c.key for c in self._chunks if c.key is not None]

    def set(self, key: str, value: str, comment: str | None = None) -> None:
        """Give ``key`` the value ``value``.

        The first binding of ``key`` is replaced where it stands (keeping its ``export``
        prefix and the blank lines before it); later duplicates are dropped, so no stale
        secret stays behind. A new key is appended, after ``comment`` if given.
        """
        check_value(value)
        first: _Chunk | None = None
        kept: list[_Chunk] = []
        for chunk in self._chunks:
            if chunk.key != key:
                kept.append(chunk)
            elif first is None:
                first = chunk
                kept.append(chunk)
        self._chunks = kept
        if first is not None:
            space = first.text[: len(first.text) - len(first.text.lstrip())]
            prefix = space[: space.rfind("\n") + 1]  # blank lines yes, indentation no
            export = _EXPORT.match(first.text, len(space)) is not None
            first.text = prefix + render_line(key, value, export)
            return
        if not self._chunks:
            self._chunks.append(_Chunk(HEADER))
        if not self._chunks[-1].text.endswith("\n"):
            self._chunks[-1].text += "\n"
        if comment:
            self._chunks.append(_Chunk(f"# {comment}\n"))
        self._chunks.append(_Chunk(render_line(key, value), key))

    def update(self, values: Mapping[str, str], comments: Mapping[str, str] | None = None) -> None:
        for key, value in values.items():
            self.set(key, value, (comments or {}).get(key))

    def render(self) -> str:
        return "".join(c.text for c in self._chunks)

    def write(self, path: Path | None = None) -> Path:
        """Replace the file atomically, mode 0600 from the first byte."""
        target = path or self.path
        if target is None:
            raise ValueError("no path to write to")
        atomic_write(target, self.render().encode("utf-8"), mode=0o600)
        return target
