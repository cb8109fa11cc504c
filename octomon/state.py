"""``CACHE_DIR/state.json``: the monitor's cursor, the device, the refresh token, the API
call ledger and any rate-limit backoff (SPEC §4.1, §4.3).

Several processes share the file (``run``, ``backfill``, ``test-octopus``), so every
change is a read-modify-write under a cross-process ``fcntl`` lock on
``CACHE_DIR/state.lock``: the ledger is merged, never overwritten by a stale copy. The
file is replaced atomically and is ``0600`` (it holds the refresh token).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from octomon import fsutil
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
    ),
)
_GAS_INSTANTS = ("gas_cursor", "gas_newest")
_GAS_TEXTS = ("gas_device_id", "gas_mprn", "gas_serial")


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
        )
        obj.update({k: t(getattr(self, k)) for k in _GAS_INSTANTS if getattr(self, k)})
        obj.update({k: getattr(self, k) for k in _GAS_TEXTS if getattr(self, k)})
        return obj

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> State:
        """Lenient per field: a bad value is reset to its default (and logged)."""
        state = cls(extra={k: v for k, v in obj.items() if k not in _KNOWN})

        def bad(name: str) -> None:
            log.warning("state.json: ignoring an invalid %s", name)

        for name in (
            "cursor",
            "refresh_expires_at",
            "backoff_until",
            "rate_limited_since",
            *_GAS_INSTANTS,
        ):
            value = obj.get(name)
            if value is None:
                continue
            try:
                if not isinstance(value, str):
                    raise ValueError(name)
                setattr(state, name, parse_instant(value))
            except ValueError:
                bad(name)
        for name in ("device_id", "refresh_token", *_GAS_TEXTS):
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
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        target = self.path.with_name(f"{STATE_FILE}.corrupt-{stamp}")
        try:
            os.replace(self.path, target)
        except FileNotFoundError:  # another process already moved it
            return State()
        except OSError as exc:
            log.warning("state.json is corrupt and could not be moved aside (%s)", exc.strerror)
            return State()
        log.warning(
            "state.json was corrupt: moved aside to %s; starting with a fresh state "
            "(the cursor, device and call ledger are reset)",
            target.name,
        )
        self.recovered_corrupt = target
        return State()
