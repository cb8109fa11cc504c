"""The one backoff rule: start at ``first``, double after each failure, never past ``cap``."""

from __future__ import annotations


def next_delay(previous: float, first: float, cap: float) -> float:
    """The delay after a failure that followed a delay of ``previous`` (0: the first)."""
    if previous <= 0:
        return min(first, cap)
    return min(max(previous * 2, first), cap)
