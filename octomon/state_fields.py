"""``state.json``'s fields read leniently (:mod:`octomon.state`): a value of the wrong type or
out of range is reset to its default and logged, and the rest of the file is kept."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from octomon import jsonfile
from octomon.jsonfile import DAMAGE

log = logging.getLogger("octomon.state")  # the warnings read as the state file's own

V = TypeVar("V")
D = TypeVar("D")


def parsed(obj: dict[str, Any], name: str, parse: Callable[[Any], V], default: D) -> V | D:
    """``parse(obj[name])``; ``default`` when absent or null, or (logged) when invalid."""
    value = obj.get(name)
    if value is None:
        return default
    try:
        return parse(value)
    except DAMAGE:
        log.warning("state.json: ignoring an invalid %s", name)
        return default


def table(obj: dict[str, Any], name: str) -> dict[str, Any]:
    value = obj.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        log.warning("state.json: ignoring an invalid %s", name)
        return {}
    return value


def listed(obj: dict[str, Any], name: str) -> list[Any]:
    value = obj.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        log.warning("state.json: ignoring an invalid %s", name)
        return []
    return value


def nonempty(value: Any) -> str:
    if not jsonfile.text(value):
        raise ValueError("empty")
    return str(value)


def count(value: Any) -> int:
    if jsonfile.integer(value) < 0:
        raise ValueError("negative")
    return int(value)


def seconds(value: Any) -> float:
    if jsonfile.number(value) < 0:
        raise ValueError("negative")
    return int(value) if isinstance(value, int) else float(value)  # 300 stays 300: same bytes
