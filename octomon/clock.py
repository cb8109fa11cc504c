"""The clock is passed in (STYLE rule 5): this is the default one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Aware UTC now."""
    return datetime.now(timezone.utc)


def command_now() -> datetime:
    """``now`` for a CLI command, read once and passed down: :data:`command_clock`'s time.

    The wall clock; a test sets ``octomon.clock.command_clock`` (``tests/helpers/cli.py``) so
    that a command answers as at 10:00 or 17:00 UK time whatever the hour.
    """
    return command_clock()


command_clock: Clock = utcnow
