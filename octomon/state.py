"""``CACHE_DIR/state.json``: the monitor's cursor, the newest reading it stored and its last
cycle (for the clock rules), the device, the refresh token, the API call ledger and any
rate-limit backoff (SPEC §4.1, §4.3).

Several processes share the file (``run``, ``backfill``, ``test-octopus``), so every
change is a read-modify-write under a cross-process ``fcntl`` lock on
``CACHE_DIR/state.lock``: the ledger is merged, never overwritten by a stale copy. The
file is replaced atomically and is ``0600`` (it holds the refresh token).

A file that cannot be parsed is set aside as ``state.json.corrupt-<time>`` with anything
that could be a secret removed (the refresh token, any long token-like string, and every
registered secret), so the copy can be kept or shared safely (SPEC §5).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from octomon import fsutil, redact
from octomon.clock import utcnow
from octomon.readings import parse_instant

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
LEDGER_SPAN = timedelta(hours=1)

_KNOWN = (
    "cursor",
    "device_id",
    "refresh_token",
    "refresh_expires_at",
    "calls",
    "backoff_until",
    "backoff_seconds",
    "rate_limited_since",
    *(
        "gas_cursor",
        "gas_newest",
        "gas_device_id",
        "gas_mprn",
        "gas_serial",
        "gas_absent",
        "gas_absent_at",
    ),
    "first_window_start",
    "newest_stored",
    "last_cycle_at",
    "hold_owner",
    "hold_calls",
    "hold_since",
)
# Written only when set (most files never hold them).
_OPTIONAL_INSTANTS = ("gas_cursor", "gas_newest", "gas_absent_at", "first_window_start")
_OPTIONAL_TEXTS = ("gas_device_id", "gas_mprn", "gas_serial", "gas_absent")
_TIMES = (
    "cursor",
    "refresh_expires_at",
    "backoff_until",
    "rate_limited_since",
    "newest_stored",
    "last_cycle_at",
    "hold_since",
    *_OPTIONAL_INSTANTS,
)
# In a damaged file: the value of a secret-bearing key (even unterminated), and any long
# run of token characters (JWTs, API keys, refresh tokens).
_SECRET_VALUE = re.compile(rb'("(?:refresh_token|token|api_key)"\s*:\s*)"[^"\n]*"?')
_TOKEN_LIKE = re.compile(rb"[A-Za-z0-9_\-.+/=]{24,}")


def format_instant(dt: datetime) -> str:
    """UTC ISO 8601 with ``Z``, microseconds kept when present (the ledger needs them)."""
    text = dt.astimezone(timezone.utc).replace(tzinfo=None).isoformat()
    return text + "Z"


@dataclass
class State:
    cursor: datetime | None = None  # the monitor's settled point (SPEC §4.1)
    device_id: str | None = None
    refresh_token: str | None = None
    refresh_expires_at: datetime | None = None
    calls: list[datetime] = field(default_factory=list)  # the API call ledger
    backoff_until: datetime | None = None  # rate-limit backoff end
    backoff_seconds: float = 0  # current backoff step (300 .. 1800)
    rate_limited_since: datetime | None = None  # start of the current rate-limited episode
    # Gas (SPEC §11): its own cursor, its newest stored half-hour, the meter found.
    gas_cursor: datetime | None = None
    gas_newest: datetime | None = None
    gas_device_id: str | None = None
    gas_mprn: str | None = None
    gas_serial: str | None = None
    # "No gas" as the account said it (octomon.octopus.gas: none, unsupported), and when.
    gas_absent: str | None = None
    gas_absent_at: datetime | None = None
    # Where the first window starts while there is no cursor yet (Cursor.start_at).
    first_window_start: datetime | None = None
    newest_stored: datetime | None = None  # read_at of the newest reading actually stored
    last_cycle_at: datetime | None = None  # the monitor's last poll cycle (clock rules)
    # The calls a `run` may make before it next writes this file (octopus.budget): other
    # processes count them as made, so the budget holds across processes.
    hold_owner: str | None = None
    hold_calls: int = 0
    hold_since: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, preserved

    def prune(self) -> None:
        """Drop ledger entries more than an hour older than the newest one; keep order."""
        self.calls.sort()
        if self.calls:
            horizon = self.calls[-1] - LEDGER_SPAN
            self.calls = [c for c in self.calls if c > horizon]

    def to_obj(self) -> dict[str, Any]:
        def t(dt: datetime | None) -> str | None:
            return format_instant(dt) if dt is not None else None

        obj: dict[str, Any] = dict(self.extra)
        obj.update(
            cursor=t(self.cursor),
            device_id=self.device_id,
            refresh_token=self.refresh_token,
            refresh_expires_at=t(self.refresh_expires_at),
            calls=[format_instant(c) for c in self.calls],
            backoff_until=t(self.backoff_until),
            backoff_seconds=self.backoff_seconds,
            rate_limited_since=t(self.rate_limited_since),
            newest_stored=t(self.newest_stored),
            last_cycle_at=t(self.last_cycle_at),
            hold_owner=self.hold_owner,
            hold_calls=self.hold_calls,
            hold_since=t(self.hold_since),
        )
        obj.update({k: t(getattr(self, k)) for k in _OPTIONAL_INSTANTS if getattr(self, k)})
        obj.update({k: getattr(self, k) for k in _OPTIONAL_TEXTS if getattr(self, k)})
        return obj

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> State:
        """Lenient per field: a bad value is reset to its default (and logged)."""
        state = cls(extra={k: v for k, v in obj.items() if k not in _KNOWN})

        def bad(name: str) -> None:
            log.warning("state.json: ignoring an invalid %s", name)

        for name in _TIMES:
            value = obj.get(name)
            if value is None:
                continue
            try:
                if not isinstance(value, str):
                    raise ValueError(name)
                setattr(state, name, parse_instant(value))
            except ValueError:
                bad(name)
        for name in ("device_id", "refresh_token", "hold_owner", *_OPTIONAL_TEXTS):
            value = obj.get(name)
            if value is None:
                continue
            if isinstance(value, str) and value:
                setattr(state, name, value)
            else:
                bad(name)
        calls = obj.get("calls")
        if calls is not None:
            if not isinstance(calls, list):
                bad("calls")
            else:
                for item in calls:
                    try:
                        if not isinstance(item, str):
                            raise ValueError(item)
                        state.calls.append(parse_instant(item))
                    except ValueError:
                        bad("call ledger entry")
                state.calls.sort()
        held = obj.get("hold_calls")
        if isinstance(held, int) and not isinstance(held, bool) and held >= 0:
            state.hold_calls = held
        elif held is not None:
            bad("hold_calls")
        seconds = obj.get("backoff_seconds")
        if seconds is not None:
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds >= 0:
                state.backoff_seconds = float(seconds)
            else:
                bad("backoff_seconds")
        return state


class StateStore:
    """``state.json`` under ``cache_dir``; see the module docstring for the rules."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self.path = self.cache_dir / STATE_FILE
        self.lock_path = self.cache_dir / LOCK_FILE
        self.recovered_corrupt: Path | None = None

    def load(self) -> State:
        """The state on disk; a fresh one when missing; a corrupt file is moved aside.

        Reading needs no lock: the file is only ever replaced whole (rename).
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return State()
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            return self._set_aside()
        return State.from_obj(obj)

    def update(self, mutate: Callable[[State], None]) -> State:
        """Under the lock: re-read, apply ``mutate``, write atomically; the new state.

        If ``mutate`` raises, nothing is written and the exception propagates. A failed
        write (disk full) raises ``OSError``.
        """
        with self._locked():
            state = self.load()
            mutate(state)
            state.prune()
            data = json.dumps(state.to_obj(), indent=1, sort_keys=True).encode() + b"\n"
            fsutil.atomic_write(self.path, data, 0o600)
            return state

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not self.cache_dir.is_dir():
            fsutil.ensure_private_dir(self.cache_dir)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _set_aside(self) -> State:
        """Replace the damaged file by a copy without secrets (0600); a fresh state."""
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        target = self.path.with_name(f"{STATE_FILE}.corrupt-{stamp}")
        try:
            raw = self.path.read_bytes()
            fsutil.atomic_write(target, without_secrets(raw), 0o600)
            self.path.unlink()
        except FileNotFoundError:  # another process already moved it
            return State()
        except OSError as exc:
            log.warning("state.json is corrupt and could not be set aside (%s)", exc.strerror)
            return State()
        log.warning(
            "state.json was corrupt: set aside as %s (secrets removed); starting with a "
            "fresh state (the cursor, device and call ledger are reset)",
            target.name,
        )
        self.recovered_corrupt = target
        return State()


def without_secrets(raw: bytes) -> bytes:
    """A damaged state file's bytes with every possible secret replaced by ``****``."""
    raw = _SECRET_VALUE.sub(rb'\1"****"', raw)
    raw = _TOKEN_LIKE.sub(b"****", raw)
    return redact.scrub(raw.decode("utf-8", "replace")).encode()
