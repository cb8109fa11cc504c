"""Secret masking: the display forms, and a process-wide registry of values to scrub.

Every configured secret (API key, InfluxDB token, the Slack webhook URL) and every Kraken
token once known is registered here. The logging formatter (``octomon.logs``) and the CLI
error handler pass all text through :func:`scrub`, so a secret that slips into an
exception message (``requests`` puts URLs in its errors) is still never shown.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

_lock = threading.Lock()
_secrets: dict[str, str] = {}  # secret -> its masked form


def mask(secret: str | None) -> str:
    """``sk_l…89ab`` for long secrets, ``****`` for short ones, ``""`` for none."""
    if not secret:
        return ""
    if len(secret) < 12:
        return "****"
    return f"{secret[:4]}…{secret[-4:]}"


def mask_url(url: str | None) -> str:
    """A webhook as its scheme and host only: the path is the secret."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "****"
    if not parts.scheme or not parts.hostname:
        return "****"
    return f"{parts.scheme}://{parts.hostname}/…"


def register(secret: str | None, masked: str | None = None) -> None:
    """Remember a secret so that :func:`scrub` replaces it everywhere from now on."""
    if not secret or len(secret) < 4:
        return
    with _lock:
        _secrets[secret] = masked if masked is not None else mask(secret)


def register_url(url: str | None) -> None:
    """Register a secret URL (the Slack webhook) and its path on its own."""
    if not url:
        return
    register(url, mask_url(url))
    try:
        path = urlsplit(url).path
    except ValueError:
        return
    if len(path.strip("/")) >= 8:
        register(path, "/…")


def clear() -> None:
    """Forget every registered secret (tests)."""
    with _lock:
        _secrets.clear()


def scrub(text: str) -> str:
    """Replace every registered secret in ``text`` by its masked form (longest first)."""
    if not _secrets or not text:
        return text
    with _lock:
        items = sorted(_secrets.items(), key=lambda kv: len(kv[0]), reverse=True)
    for secret, masked in items:
        if secret in text:
            text = text.replace(secret, masked)
    return text
