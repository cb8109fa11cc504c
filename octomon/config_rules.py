"""The rules of SPEC §2, one parser per kind of value: each returns the value or raises
``ValueError(rule)``. :mod:`octomon.config` names which variable uses which."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

ACCOUNT_RE = re.compile(r"^A-[A-Z0-9]{8}$", re.IGNORECASE)
LOG_LEVELS = ("debug", "info", "warning", "error")


def non_empty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def http_url(raw: str) -> str:
    raw = raw.strip()
    try:
        parts = urlsplit(raw)
    except ValueError:
        raise ValueError("must be an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    try:
        parts.port  # noqa: B018 (validates the port)
    except ValueError:
        raise ValueError("must be an http(s) URL with a valid port") from None
    return raw


def account(raw: str) -> str:
    raw = raw.strip()
    if not ACCOUNT_RE.match(raw):
        raise ValueError("must be A- followed by 8 letters or digits, e.g. A-1234ABCD")
    return raw.upper()


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"must be a whole number from {lo} to {hi}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be a whole number from {lo} to {hi}")
        return value

    return parse


def positive_number(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("must be a number greater than 0") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError("must be a number greater than 0")
    return value


def number_range(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"must be a number from {lo:g} to {hi:g}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be a number from {lo:g} to {hi:g}")
        return value

    return parse


def one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError("must be one of " + ", ".join(choices))
        return value

    return parse


def ca_cert(raw: str) -> Path:
    path = Path(raw.strip()).expanduser()
    if not raw.strip():
        raise ValueError("must not be empty")
    if not path.is_file():
        raise ValueError("no such file (a PEM CA bundle)")
    if not os.access(path, os.R_OK):
        raise ValueError("is not readable")
    return path


_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")


def night_window(text: str) -> tuple[int, int]:
    """``"00:30-07:30"`` -> (30, 450): minutes after UTC midnight, end exclusive.

    A window may wrap midnight (``"23:30-06:30"``); start == end is refused.
    """
    m = _HHMM.match(text.strip())
    if m is None:
        raise ValueError("must be HH:MM-HH:MM in UTC, e.g. 00:30-07:30")
    a, b, c, d = (int(g) for g in m.groups())
    start, end = a * 60 + b, c * 60 + d
    if start == end:
        raise ValueError("must not start and end at the same time")
    if start % 30 or end % 30:
        raise ValueError("must start and end on a half-hour (:00 or :30)")
    return start, end


def night(raw: str) -> str:
    night_window(raw)
    return raw.strip()


def log_level(raw: str) -> str:
    value = raw.strip().lower()
    if value not in LOG_LEVELS:
        raise ValueError("must be one of " + ", ".join(LOG_LEVELS))
    return value


def check_cache_dir(path: Path) -> None:
    """CACHE_DIR's rule (:mod:`octomon.cachedir`, which names the real cause)."""
    from octomon.cachedir import check

    check(path)


def cache_dir(raw: str) -> Path:
    from octomon.cachedir import parse

    return parse(raw)


def listen(raw: str) -> str:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6), or a bare port meaning 127.0.0.1."""
    raw = raw.strip()
    host, sep, port = raw.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", raw
    host = host.strip("[]")
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValueError("must be HOST:PORT or a port, e.g. 127.0.0.1:9110 or 9110")
    return f"{host}:{int(port)}"


def mqtt_url(raw: str) -> str:
    raw = raw.strip()
    rule = "must be mqtt://[user[:password]@]host[:port] or mqtts://…"
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 (validates the port)
    except ValueError:
        raise ValueError(rule) from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(rule)
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(rule + " (no path: the topics are MQTT_TOPIC_PREFIX's)")
    return raw


def topic(raw: str) -> str:
    """An MQTT topic root: not empty, no wildcard, no leading or trailing '/'."""
    value = raw.strip()
    if not value or any(c in value for c in "+#\x00") or value != value.strip("/"):
        raise ValueError("must be a topic without +, # or a leading/trailing /")
    return value


def read_secret_file(raw: str) -> str:
    """A secret from ``NAME_FILE`` (Docker, Kubernetes): the file's text, one trailing
    newline dropped."""
    path = Path(raw.strip()).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except IsADirectoryError:
        raise ValueError("is a directory, not a file") from None
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ValueError("is not UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r")


# The outputs' optional packages (SPEC §13): variable -> (extra, module, its package).
EXTRAS = {
    "MQTT_URL": ("mqtt", "paho.mqtt", "paho-mqtt"),
    "HTTP_LISTEN": ("prometheus", "prometheus_client", "prometheus-client"),
}


def missing_extra(name: str) -> str | None:
    """The problem when ``name`` is set but its extra is not installed, else None."""
    import importlib.util

    extra, module, package = EXTRAS[name]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    return f"{name} is set but {package} is not installed: pip install 'octomon[{extra}]'"
