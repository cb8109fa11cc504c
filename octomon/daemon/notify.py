"""systemd's notify protocol (SPEC §6): ``READY=1``, ``WATCHDOG=1``, ``STOPPING=1``, ``STATUS=``.

A few lines of socket code instead of a dependency: a datagram to the unix socket named by
``NOTIFY_SOCKET`` (a path, or an abstract address written ``@name``). Notifying is a
courtesy to the service manager, never a reason to fail: every send swallows its error
and logs it at DEBUG.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends notify messages to one socket; ``from_env`` decides whether there is one."""

    def __init__(self, address: str, watchdog_interval: float | None = None) -> None:
        self.address = address  # a path, or "\0name" for an abstract socket
        self.watchdog_interval = watchdog_interval  # seconds between WATCHDOG=1, or None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SystemdNotifier | None:
        """The notifier systemd asked for, or None when not run under ``Type=notify``."""
        raw = environ.get("NOTIFY_SOCKET", "")
        if raw.startswith("@") and len(raw) > 1:
            address = "\0" + raw[1:]
        elif raw.startswith("/"):
            address = raw
        else:
            if raw:
                log.debug("NOTIFY_SOCKET is neither a path nor an @abstract name: ignored")
            return None
        return cls(address, _watchdog_interval(environ))

    def ready(self) -> None:
        self.notify("READY=1")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def status(self, text: str) -> None:
        """A one-line status shown by ``systemctl status`` (newlines would end the field)."""
        self.notify("STATUS=" + " ".join(text.split()))

    def notify(self, message: str) -> bool:
        """Send one datagram; True when it went out. Never raises."""
        data = message.encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.setblocking(False)  # a full receive queue must not stall a cycle
                self._sock.sendto(data, self.address)
            except OSError as exc:
                log.debug("systemd notify %r failed: %s", message.split("=", 1)[0], exc)
                return False
        return True

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, when the watchdog is meant for this process."""
    raw = environ.get("WATCHDOG_USEC", "").strip()
    if not raw:
        return None
    pid = environ.get("WATCHDOG_PID", "").strip()
    try:
        usec = int(raw)
        if pid and int(pid) != os.getpid():
            return None
    except ValueError:
        log.debug("WATCHDOG_USEC / WATCHDOG_PID are not whole numbers: watchdog ignored")
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000
