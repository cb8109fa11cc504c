"""The clock is passed in (STYLE rule 5): this is the default one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Aware UTC now."""
    return datetime.now(timezone.utc)
