"""One JSON file octomon keeps in ``CACHE_DIR``: versioned, locked, atomic 0600, lenient.

``state.json``, the tally, the kept prices and the kept settled data all follow one rule
(SPEC §4.1): a file that cannot be read — truncated, hand-edited, a value of the wrong type,
an unknown version — is set aside beside itself as ``<name>.corrupt-<UTC time>`` with
anything that could be a secret removed, ONE warning says which file and what it held, and
the caller carries on with an empty value. No damaged file stops a command.

A :class:`Kind` says how one file is read and written: its version, a strict decoder (any
wrong type raises — :func:`text`, :func:`number` … help), an encoder and the empty value.
A write whose bytes equal the file's is skipped: an SD card is not worn by rewriting what
it already holds (SPEC §4.9).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar

from octomon import fsutil, redact
from octomon.clock import utcnow
from octomon.latch import Latch
from octomon.readings import parse_instant

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# What a decoder may raise on a damaged file: decimal.InvalidOperation is an ArithmeticError,
# a deeply nested file a RecursionError.
DAMAGE = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    ArithmeticError,
    RecursionError,
)

# In a damaged file: the value of a secret-bearing key (even unterminated), and any long
# run of token characters (JWTs, API keys, refresh tokens).
_SECRET_VALUE = re.compile(rb'("(?:refresh_token|token|api_key)"\s*:\s*)"[^"\n]*"?')
_TOKEN_LIKE = re.compile(rb"[A-Za-z0-9_\-.+/=]{24,}")
# The UK days a damaged file names as keys of half-hours (``"2026-12-01T10:30:00Z":``).
KEY_DAYS = re.compile(rb'"(\d{4}-\d{2}-\d{2})T[0-9:.]*Z?"\s*:')


class Damaged(ValueError):
    """A file's content is not what its reader expects."""


class Outdated(Exception):
    """A file an older octomon wrote in a layout this one no longer reads (``Kind.older``)."""


@dataclass(frozen=True)
class Kind(Generic[T]):
    """How one file is read and written."""

    name: str  # the file's name in CACHE_DIR
    version: int
    decode: Callable[[dict[str, Any]], T]  # strict: raises one of DAMAGE on anything odd
    encode: Callable[[T], dict[str, Any]]  # without "version" (added here)
    empty: Callable[[], T]
    held: Callable[[bytes], str]  # what a damaged file held, for the warning
    then: str  # what happens next, for the warning ("prices are fetched again")
    unversioned: bool = False  # a file without "version" (older octomon) reads as ``version``
    # Set: a file of an earlier version (or without one) is no damage but read as empty,
    # said once at INFO with this, and replaced at the next write (not set aside).
    older: str | None = None
    durable: bool = True  # fsync'ed (False: a view, such as status.json)
    sort_keys: bool = False
    # The set-aside copy's bytes: registered secrets (and token-bearing keys) masked;
    # state.json, which holds a refresh token, masks every token-like string too.
    scrub: Callable[[bytes], bytes] = lambda raw: _scrub(raw)


def without_secrets(raw: bytes) -> bytes:
    """A damaged file's bytes with every possible secret replaced by ``****``."""
    return _scrub(_TOKEN_LIKE.sub(b"****", raw))


def _scrub(raw: bytes) -> bytes:
    raw = _SECRET_VALUE.sub(rb'\1"****"', raw)
    text = raw.decode("utf-8", "surrogateescape")  # bytes that are not text kept as they were
    return redact.scrub(text).encode("utf-8", "surrogateescape")


def days_held(noun: str, days: re.Pattern[bytes] = KEY_DAYS) -> Callable[[bytes], str]:
    """``35 days of <noun> (2026-10-31 to 2026-12-04)``: the days a damaged file names."""

    def held(raw: bytes) -> str:
        found = sorted({m.decode() for m in days.findall(raw) if _is_date(m)})
        if not found:
            return f"no readable {noun}"
        if len(found) == 1:
            return f"1 day of {noun} ({found[0]})"
        return f"{len(found)} days of {noun} ({found[0]} to {found[-1]})"

    return held


def _is_date(text: bytes) -> bool:
    try:
        date.fromisoformat(text.decode())
    except ValueError:
        return False
    return True


class JsonFile(Generic[T]):
    """``directory/kind.name``, locked by ``directory/<lock>``; see the module docstring."""

    def __init__(self, directory: Path, kind: Kind[T], lock: str) -> None:
        self.directory = Path(directory)
        self.kind = kind
        self.path = self.directory / kind.name
        self.lock_path = self.directory / lock
        self.set_aside: Path | None = None  # the copy of the damaged file this object made
        self._unreadable = Latch(log)
        self._outdated: bytes | None = None  # the older file last said so

    # --- reading ---------------------------------------------------------------------

    def load(self) -> T:
        """The file's value; empty when missing; a damaged file is set aside (see above).

        Reading needs no lock: the file is only ever replaced whole (rename).
        """
        return self.read(locked=False)[0]

    def read(self, *, locked: bool) -> tuple[T, bytes | None]:
        """The value and the bytes it was read from (None: no file)."""
        try:
            raw = fsutil.read_bytes(self.path)
        except FileNotFoundError:
            return self.kind.empty(), None
        except OSError as exc:
            self._unreadable.fail("cannot read %s (%s)", self.path, exc.strerror or exc)
            return self.kind.empty(), None
        try:
            value = self.decode(raw)
        except Outdated as exc:
            self._unreadable.ok()
            if self._outdated != raw:
                self._outdated = raw
                log.info(
                    "%s was written by an older octomon (%s): %s", self.path, exc, self.kind.older
                )
            return self.kind.empty(), None
        except DAMAGE as exc:
            reason = _reason(exc)
        else:
            self._unreadable.ok()
            return value, raw
        if locked:
            self._set_aside(raw, reason)
        else:
            try:
                with fsutil.flocked(self.lock_path):
                    self._set_aside(raw, reason)
            except OSError as exc:  # a read-only CACHE_DIR: read as empty all the same
                self._cannot_set_aside(reason, exc)
        return self.kind.empty(), None

    def decode(self, raw: bytes) -> T:
        """The value of ``raw``; raises one of :data:`DAMAGE` when it is not one."""
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise Damaged("not a JSON object")
        version = obj.get("version", None if not self.kind.unversioned else self.kind.version)
        if self.kind.older and _earlier(version, self.kind.version):
            raise Outdated("no version" if version is None else f"version {version}")
        if version != self.kind.version or isinstance(version, bool):
            raise Damaged(f"version {version!r}, not {self.kind.version}")
        return self.kind.decode(obj)

    def encode(self, value: T) -> bytes:
        obj = {"version": self.kind.version, **self.kind.encode(value)}
        text = json.dumps(obj, separators=(",", ":"), sort_keys=self.kind.sort_keys)
        return text.encode() + b"\n"

    # --- writing ---------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the file's lock (``fcntl``): one read-modify-write at a time across processes."""
        with fsutil.flocked(self.lock_path):
            yield

    def update(self, mutate: Callable[[T], R]) -> tuple[T, R]:
        """Under the lock: re-read, ``mutate`` in place, write if the bytes changed.

        If ``mutate`` raises, nothing is written. A failed write raises ``OSError``.
        """
        with self.locked():
            value, raw = self.read(locked=True)
            result = mutate(value)
            self._write(value, raw)
            return value, result

    def save(self, value: T) -> bool:
        """Write ``value`` (the caller holds the lock, or is the file's only writer);
        False when the file already held these bytes."""
        try:
            raw: bytes | None = fsutil.read_bytes(self.path)
        except OSError:
            raw = None
        return self._write(value, raw)

    def _write(self, value: T, raw: bytes | None) -> bool:
        data = self.encode(value)
        if data == raw:
            return False
        fsutil.atomic_write(self.path, data, 0o600, durable=self.kind.durable)
        return True

    def _set_aside(self, raw: bytes, reason: str) -> None:
        """Replace the damaged file by a copy without secrets (0600), and say so once."""
        try:
            if fsutil.read_bytes(self.path) != raw:
                return  # another process replaced it meanwhile
        except FileNotFoundError:
            return  # another process already moved it
        except OSError:
            pass
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        target = self.path.with_name(f"{self.kind.name}.corrupt-{stamp}")
        try:
            fsutil.atomic_write(target, self.kind.scrub(raw), 0o600)
            self.path.unlink()
        except OSError as exc:
            self._cannot_set_aside(reason, exc)
            return
        log.warning(
            "%s was damaged (%s): set aside as %s (secrets removed); it held %s; %s",
            self.kind.name,
            reason,
            target.name,
            self.kind.held(raw),
            self.kind.then,
        )
        self.set_aside = target

    def _cannot_set_aside(self, reason: str, exc: OSError) -> None:
        self._unreadable.fail(
            "%s is damaged (%s) and could not be set aside (%s); %s",
            self.kind.name,
            reason,
            exc.strerror or exc,
            self.kind.then,
        )


def _earlier(version: Any, current: int) -> bool:
    return version is None or (
        isinstance(version, int) and not isinstance(version, bool) and 0 < version < current
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, Damaged):
        return str(exc)
    if type(exc).__name__ == "JSONDecodeError":
        return "not valid JSON: truncated or hand-edited"
    if isinstance(exc, ArithmeticError):
        return "a value that is not a number"
    return "a value of the wrong type"


# --- strict readers for decoders: each returns the value or raises Damaged ---------------


def mapping(value: Any, what: str = "a value") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Damaged(f"{what} is not an object")
    return value


def array(value: Any, what: str = "a value") -> list[Any]:
    if not isinstance(value, list):
        raise Damaged(f"{what} is not a list")
    return value


def text(value: Any, what: str = "a value") -> str:
    if not isinstance(value, str):
        raise Damaged(f"{what} is not a text")
    return value


def integer(value: Any, what: str = "a value") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Damaged(f"{what} is not a whole number")
    return value


def number(value: Any, what: str = "a value") -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise Damaged(f"{what} is not a number")
    return float(value)


def decimal(value: Any, what: str = "a price") -> Decimal:
    """A decimal written as text (``"0.2451"``): ``"n/a"`` or ``"NaN"`` is damage."""
    amount = Decimal(text(value, what))  # decimal.InvalidOperation (an ArithmeticError)
    if not amount.is_finite():
        raise Damaged(f"{what} is not a number")
    return amount


def instant(value: Any, what: str = "a time") -> datetime:
    return parse_instant(text(value, what))


def day(value: Any, what: str = "a day") -> date:
    return date.fromisoformat(text(value, what))
