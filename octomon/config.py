"""Settings: SPEC §2 — precedence, validation rules, masking, sources.

Resolved once in the CLI layer (:func:`load`) and passed down as a frozen
:class:`Settings`. Nothing else in octomon reads ``os.environ``.

Each rule lives in one :class:`Field`; ``configure`` validates wizard answers with the
same ``Field.parse``, so there is one source of truth.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from octomon import config_rules as rules
from octomon import redact
from octomon.config_rules import ACCOUNT_RE as ACCOUNT_RE  # re-exported: used elsewhere
from octomon.config_rules import LOG_LEVELS as LOG_LEVELS
from octomon.config_rules import check_cache_dir as check_cache_dir
from octomon.config_rules import night_window as night_window
from octomon.errors import ConfigError

DEFAULT_API_URL = "https://api.octopus.energy/v1/graphql/"
DEFAULT_REST_URL = "https://api.octopus.energy/v1/"
DEFAULT_NIGHT = "00:30-07:30"
PAYMENT_METHODS = ("direct_debit", "non_direct_debit")
GAS_MODES = ("auto", "off")

# Which settings each kind of command validates (SPEC §2).
GROUPS: dict[str, tuple[str, ...]] = {
    "octopus": (
        "OCTOPUS_API_KEY",
        "OCTOPUS_ACCOUNT_NUMBER",
        "OCTOPUS_DEVICE_ID",
        "OCTOPUS_API_URL",
        "OCTOPUS_MAX_CALLS_PER_HOUR",
    ),
    "influx": (
        "INFLUXDB_URL",
        "INFLUXDB_TOKEN",
        "INFLUXDB_ORG",
        "INFLUXDB_BUCKET",
        "INFLUXDB_CA_CERT",
    ),
    # tariffs, settled consumption and costs (SPEC §9-§12)
    "tariff": ("OCTOPUS_REST_URL", "ECONOMY7_NIGHT", "OCTOPUS_PAYMENT_METHOD"),
    "gas": ("OCTOPUS_GAS", "GAS_POLL_INTERVAL_SECONDS", "GAS_CALORIFIC_VALUE"),
    "slack": ("SLACK_WEBHOOK_URL",),
    "cache": ("CACHE_DIR",),
    # the outputs beyond InfluxDB (SPEC §13)
    "publish": (
        "HTTP_LISTEN",
        "MQTT_URL",
        "MQTT_TOPIC_PREFIX",
        "HA_DISCOVERY_PREFIX",
        "MQTT_CA_CERT",
    ),
}


# Field and Settings are NamedTuples, not dataclasses: every command imports this module,
# and a dataclass costs ~1-3 ms to define (SPEC §7 start-up budget).


class Field(NamedTuple):
    name: str
    parse: Callable[[str], Any]
    default: str | None = None
    # "", "token" (sk_l…89ab), "url" (shown as scheme and host only) or "login" (the same,
    # but only the URL's password is the secret: a broker's address is no secret)
    secret: str = ""
    help: str = ""

    @property
    def attr(self) -> str:
        return self.name.lower()

    def display(self, value: object) -> str:
        if value is None:
            return ""
        if self.secret == "token":
            return redact.mask(str(value))
        if self.secret in ("url", "login"):
            return redact.mask_url(str(value))
        return str(value)


FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field(
            "OCTOPUS_API_KEY",
            rules.non_empty,
            secret="token",
            help="your Octopus API key (sk_live_…)",
        ),
        Field("OCTOPUS_ACCOUNT_NUMBER", rules.account, help="your account number, A-XXXXXXXX"),
        Field(
            "OCTOPUS_DEVICE_ID", rules.non_empty, help="smart meter device id; discovered if unset"
        ),
        Field("OCTOPUS_API_URL", rules.http_url, DEFAULT_API_URL, help="Kraken GraphQL endpoint"),
        Field(
            "OCTOPUS_MAX_CALLS_PER_HOUR",
            rules.int_range(1, 100),
            "75",
            help="API calls per hour octomon may use",
        ),
        Field("INFLUXDB_URL", rules.http_url, help="InfluxDB URL; unset = local mode"),
        Field("INFLUXDB_TOKEN", rules.non_empty, secret="token", help="InfluxDB API token"),
        Field("INFLUXDB_ORG", rules.non_empty, help="InfluxDB organisation"),
        Field("INFLUXDB_BUCKET", rules.non_empty, "octopus_energy", help="InfluxDB bucket"),
        Field(
            "INFLUXDB_CA_CERT",
            rules.ca_cert,
            help="PEM CA bundle for an InfluxDB with a private certificate",
        ),
        Field("SLACK_WEBHOOK_URL", rules.http_url, secret="url", help="Slack incoming webhook"),
        Field(
            "POLL_INTERVAL_SECONDS", rules.int_range(1, 3600), "60", help="seconds between polls"
        ),
        Field("CACHE_DIR", rules.cache_dir, "./cache", help="where readings wait for InfluxDB"),
        Field("CACHE_MAX_MB", rules.positive_number, "1024", help="cache size cap in MB"),
        Field(
            "HEALTH_CHECK_SECONDS",
            rules.int_range(1, 3600),
            "30",
            help="how often a lost InfluxDB is retried",
        ),
        Field("LOG_LEVEL", rules.log_level, "info", help="debug, info, warning or error"),
        Field(
            "OCTOPUS_REST_URL",
            rules.http_url,
            DEFAULT_REST_URL,
            help="Octopus REST API (tariffs, settled consumption)",
        ),
        Field(
            "OCTOPUS_GAS",
            rules.one_of(GAS_MODES),
            "auto",
            help="auto (poll a smart gas meter) or off",
        ),
        Field(
            "GAS_POLL_INTERVAL_SECONDS",
            rules.int_range(300, 86400),
            "1800",
            help="seconds between gas polls",
        ),
        Field(
            "GAS_CALORIFIC_VALUE",
            rules.number_range(30, 50),
            "39.5",
            help="gas calorific value in MJ/m³ (on your bill), for m³ figures",
        ),
        Field(
            "ECONOMY7_NIGHT",
            rules.night,
            DEFAULT_NIGHT,
            help="night half-hours of an E-2R- tariff, HH:MM-HH:MM UTC",
        ),
        Field(
            "OCTOPUS_PAYMENT_METHOD",
            rules.one_of(PAYMENT_METHODS),
            "direct_debit",
            help="direct_debit or non_direct_debit: which price rows apply",
        ),
        Field(
            "HTTP_LISTEN", rules.listen, help="HOST:PORT for /metrics, /health, /ready; unset = off"
        ),
        Field(
            "MQTT_URL",
            rules.mqtt_url,
            secret="login",
            help="mqtt(s)://[user[:password]@]host[:port]",
        ),
        Field("MQTT_TOPIC_PREFIX", rules.topic, "octomon", help="MQTT topic root"),
        Field("HA_DISCOVERY_PREFIX", rules.topic, "homeassistant", help="Home Assistant's prefix"),
        Field("MQTT_CA_CERT", rules.ca_cert, help="PEM CA bundle for a broker with a private CA"),
    )
}


class Settings(NamedTuple):
    octopus_api_key: str | None = None
    octopus_account_number: str | None = None
    octopus_device_id: str | None = None
    octopus_api_url: str = DEFAULT_API_URL
    octopus_max_calls_per_hour: int = 75
    influxdb_url: str | None = None
    influxdb_token: str | None = None
    influxdb_org: str | None = None
    influxdb_bucket: str = "octopus_energy"
    slack_webhook_url: str | None = None
    poll_interval_seconds: int = 60
    cache_dir: Path = Path("./cache")
    cache_max_mb: float = 1024.0
    health_check_seconds: int = 30
    log_level: str = "info"
    influxdb_ca_cert: Path | None = None
    octopus_rest_url: str = DEFAULT_REST_URL
    octopus_gas: str = "auto"
    gas_poll_interval_seconds: int = 1800
    gas_calorific_value: float = 39.5
    economy7_night: str = DEFAULT_NIGHT
    octopus_payment_method: str = "direct_debit"
    http_listen: str | None = None
    mqtt_url: str | None = None
    mqtt_topic_prefix: str = "octomon"
    ha_discovery_prefix: str = "homeassistant"
    mqtt_ca_cert: Path | None = None
    sources: Mapping[str, str] = MappingProxyType({})
    warnings: tuple[str, ...] = ()

    @property
    def local_mode(self) -> bool:
        """No InfluxDB configured: readings stay in the cache (SPEC §2)."""
        return not self.influxdb_url

    def rows(self) -> list[tuple[str, str, str]]:
        """(variable, masked value, source) for every setting, for `verify-config`."""
        return [
            (f.name, f.display(getattr(self, f.attr)), self.sources.get(f.name, "default"))
            for f in FIELDS.values()
        ]


def _shown(f: Field, raw: str) -> str:
    return f.display(raw) if f.secret else raw


def _from_file(name: str, raw: str | None, pointer: str) -> str:
    """``NAME_FILE``'s content; ValueError(problem) when NAME is set too or it is unreadable."""
    if raw is not None and raw.strip():
        raise ValueError(f"{name} and {name}_FILE are both set: keep one of them")
    try:
        return rules.read_secret_file(pointer)
    except ValueError as exc:
        raise ValueError(f"{name}_FILE={pointer}: {exc}") from None


def _password(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password
    except ValueError:
        return None


def read_env_file(path: Path) -> dict[str, str]:
    """The KEY=value pairs of a .env file (python-dotenv), empty values kept as ""."""
    from octomon import envfile

    return envfile.read_values(path)[0]


def load(
    *,
    groups: Iterable[str] = ("octopus", "influx", "slack", "cache", "all"),
    env_file: Path | None = None,
    flags: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    require: Iterable[str] = (),
) -> Settings:
    """Resolve every setting: flag > environment > .env > default.

    Only the settings of ``groups`` are validated (``"all"`` = every one, plus the
    cross-field warnings); others fall back to their default when unparseable.
    ``require`` names variables that must be set for this command. Every problem is
    collected and raised together as one :class:`ConfigError`.
    """
    groups = set(groups)
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    explicit_env_file = env_file is not None
    env_path = env_file if env_file is not None else Path(".env")
    file_values: dict[str, str] = {}
    if explicit_env_file or env_path.exists():
        from octomon import envfile

        label = f"--env-file {env_path}" if explicit_env_file else None
        file_values, file_problems = envfile.read_values(env_path, label)
        problems += file_problems

    checked: set[str] = set()
    if "all" in groups:
        checked = set(FIELDS)
    else:
        for g in groups:
            checked.update(GROUPS.get(g, ()))
    checked.update(require)

    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    given: dict[str, tuple[str, str]] = {}
    for f in FIELDS.values():
        raw: str | None
        if f.name in flags:
            raw, source = str(flags[f.name]), "flag"
        elif f.name in environ:
            raw, source = environ[f.name], "env"
        elif f.name in file_values:
            raw, source = file_values[f.name], ".env"
        else:
            raw, source = f.default, "default"
        pointer = environ.get(f.name + "_FILE") or file_values.get(f.name + "_FILE")
        if f.secret and pointer and source != "flag":  # SPEC §2: secrets from files
            try:
                raw, source = _from_file(f.name, raw, pointer), "file"
            except ValueError as exc:
                if f.name in checked:
                    problems.append(str(exc))
                sources[f.name] = "file"
                given[f.name] = (pointer, "file")  # verify-config marks the row
                continue
        if raw is not None and raw.strip() == "" and f.default is None:
            raw = None  # an empty optional setting means "not set"
        given[f.name] = (_shown(f, raw) if raw is not None else "", source)
        if raw is None:
            sources[f.name] = source if source != "default" else "default"
            continue
        try:
            values[f.attr] = f.parse(raw)
            sources[f.name] = source
        except ValueError as exc:
            if f.name in checked:
                problems.append(f"{f.name}={_shown(f, raw)!r}: {exc}")
            elif f.default is not None:
                values[f.attr] = f.parse(f.default) if f.name != "CACHE_DIR" else Path(f.default)
            sources[f.name] = source

    def missing(name: str, why: str) -> None:
        if not any(p.startswith((f"{name}=", f"{name}_FILE=", f"{name} and ")) for p in problems):
            problems.append(f"{name} is required ({why})")

    if "OCTOPUS_API_KEY" in checked and not values.get("octopus_api_key"):
        missing("OCTOPUS_API_KEY", "your API key, from the API access page of your Octopus account")
    if "OCTOPUS_ACCOUNT_NUMBER" in checked and not values.get("octopus_account_number"):
        missing("OCTOPUS_ACCOUNT_NUMBER", "A-XXXXXXXX, shown at the top of your Octopus account")
    if "INFLUXDB_URL" in checked:
        if values.get("influxdb_url"):
            for name in ("INFLUXDB_TOKEN", "INFLUXDB_ORG"):
                if name.lower() not in values:
                    missing(name, "needed with INFLUXDB_URL")
        elif "INFLUXDB_URL" in require:
            missing("INFLUXDB_URL", "this command talks to InfluxDB")
    if "SLACK_WEBHOOK_URL" in require and not values.get("slack_webhook_url"):
        missing("SLACK_WEBHOOK_URL", "this command talks to Slack")
    for name in rules.EXTRAS:  # an output without its package (SPEC §13)
        if name in checked and values.get(name.lower()):
            problem = rules.missing_extra(name)
            problems += [problem] if problem else []

    warnings: list[str] = []
    key = values.get("octopus_api_key")
    if "OCTOPUS_API_KEY" in checked and key and not key.startswith("sk_live_"):
        warnings.append("OCTOPUS_API_KEY does not look like an Octopus API key (sk_live_…)")
    if "all" in groups:
        interval = values.get("poll_interval_seconds", 60)
        budget = values.get("octopus_max_calls_per_hour", 75)
        needed = 3600 / interval + 2
        if needed > budget:
            warnings.append(
                f"POLL_INTERVAL_SECONDS={interval} needs about {needed:.0f} API calls an hour, "
                f"more than OCTOPUS_MAX_CALLS_PER_HOUR={budget}: cycles will wait for the budget"
            )
        if not values.get("influxdb_url"):
            warnings.append(
                "INFLUXDB_URL is not set: local mode, readings are kept in the cache "
                "(sync them later with `octomon sync-cache`)"
            )
        if not values.get("slack_webhook_url"):
            warnings.append("SLACK_WEBHOOK_URL is not set: alerts go to the log only")

    # Register secrets before raising, so even the error path cannot print them.
    for f in FIELDS.values():
        if f.secret and f.attr in values:
            if f.secret == "url":
                redact.register_url(values[f.attr])
            elif f.secret == "login":
                redact.register(_password(values[f.attr]))  # mqtt://user:password@host
            else:
                redact.register(values[f.attr])
                if ":" in values[f.attr]:  # InfluxDB 1.8 "username:password"
                    redact.register(values[f.attr].split(":", 1)[1])
    if problems:
        error = ConfigError(problems)
        error.rows = tuple((name, *given[name]) for name in FIELDS)
        raise error
    return Settings(**values, sources=sources, warnings=tuple(warnings))
