"""The exception tree and the exit codes, defined once.

Core modules raise these; the one handler in ``octomon.cli.ui`` turns them into a
one-line message, a hint and an exit code. Messages must never contain a secret: callers
build them from masked values only (``octomon.redact``).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the operation failed (a connection test, a sync that left readings)
    CONFIG = 2  # usage or configuration error; systemd's RestartPreventExitStatus=2


class OctomonError(Exception):
    """Base of every expected failure. ``hint`` says what to do about it."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class BadNumber(OctomonError, ValueError):
    """Not a finite number (``null``, ``"n/a"``, ``NaN`` …) where a price or an amount of
    energy must be one (``octomon.units.decimal``). A ``ValueError``: whoever reads a file
    treats it as any other damage."""

    def __init__(self, value: object) -> None:
        from octomon.redact import scrub

        text = scrub(repr(value))
        super().__init__(f"not a number: {text if len(text) <= 40 else text[:40] + '…'}")
        self.value = value


# --- configuration -----------------------------------------------------------------


class ConfigError(OctomonError):
    """One or more settings are invalid; ``problems`` holds every one of them."""

    exit_code = ExitCode.CONFIG
    # (variable, masked value, source) of every setting as given, for `verify-config`
    rows: tuple[tuple[str, str, str], ...] = ()

    def __init__(self, problems: list[str], hint: str | None = None) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"invalid configuration: {self.problems[0]}"
        else:
            message = f"invalid configuration ({len(self.problems)} problems): " + "; ".join(
                self.problems
            )
        super().__init__(message, hint or "fix the settings (see `octomon verify-config`)")


# --- Octopus (Kraken) API ------------------------------------------------------------


class OctopusError(OctomonError):
    """A failure talking to the Octopus API."""


class AuthError(OctopusError):
    """The API key (or account) was refused: a configuration problem, not transient."""


class TokenExpired(OctopusError):
    """The Kraken token expired (KT-CT-1124 / KT-CT-1120): renew once and retry."""


class RateLimited(OctopusError):
    """KT-GB-4042 / KT-CT-1199: the account's shared hourly limit was hit.

    ``retry_in`` is the backoff in seconds before the next request may be sent.
    """

    def __init__(self, message: str, hint: str | None = None, retry_in: float = 0.0) -> None:
        super().__init__(message, hint)
        self.retry_in = retry_in


class OctopusUnavailable(OctopusError):
    """Transient: 5xx, timeouts, connection errors, non-JSON bodies, KT-GB-4039/4043."""


class NotFound(OctopusError):
    """HTTP 404 from the REST API: the account, product, tariff or meter is not there."""


class NoDevice(OctopusError):
    """The account has no smart electricity meter with a Home Mini."""


class RangeTooOld(OctopusError):
    """KT-GB-4051: the start of the requested range is too far in the past."""


class BudgetExhausted(OctopusError):
    """No API call may be made now without exceeding the hourly budget (SPEC §4.3).

    Raised *before* a request is sent; ``retry_in`` is the wait until the next free slot.
    """

    def __init__(self, retry_in: float, message: str | None = None) -> None:
        from octomon.durations import words

        super().__init__(
            message or f"API call budget used up; next free slot in {words(retry_in)}",
            "raise POLL_INTERVAL_SECONDS, or OCTOPUS_MAX_CALLS_PER_HOUR (at most 100)",
        )
        self.retry_in = retry_in


class ApiError(OctopusError):
    """Any other GraphQL error, with its Kraken code."""

    def __init__(self, code: str | None, message: str, hint: str | None = None) -> None:
        super().__init__(f"{code}: {message}" if code else message, hint)
        self.code = code
        self.api_message = message


# --- InfluxDB ------------------------------------------------------------------------


class InfluxError(OctomonError):
    """A failure writing to or checking InfluxDB."""


class InfluxUnavailable(InfluxError):
    """Connection refused, timeout, 5xx, 429, 503: keep readings in the cache and retry."""

    def __init__(
        self, message: str, retry_after: float | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint or "check that InfluxDB is running and INFLUXDB_URL")
        self.retry_after = retry_after


class InfluxConfigError(InfluxError):
    """401 / 403 / 404: the token, org or bucket is wrong (``cause`` names which)."""

    def __init__(self, message: str, cause: str, status: int | None = None) -> None:
        super().__init__(message, f"check INFLUXDB_{cause.upper()}")
        self.cause = cause
        self.status = status


class InfluxRefused(InfluxError):
    """400 / 413 / 422: the server refused the data itself."""

    def __init__(self, message: str, status: int, server_message: str) -> None:
        super().__init__(message, "the refused readings are kept under CACHE_DIR/rejected/")
        self.status = status
        self.server_message = server_message


# --- the cache -----------------------------------------------------------------------


class CacheError(OctomonError):
    """The cache could not be read or written (disk full, permissions)."""


class CacheFull(CacheError):
    """The disk holding the cache is full (ENOSPC): nothing was written."""


class CacheBusy(CacheError):
    """Another process held the cache lock for longer than we were willing to wait."""


# --- Slack ---------------------------------------------------------------------------


class SlackError(OctomonError):
    """A Slack webhook failure (only raised by `test-slack`; alerts never raise)."""
