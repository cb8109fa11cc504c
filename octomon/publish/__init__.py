"""Outputs beyond InfluxDB (SPEC §13): the readings octomon already fetched, handed on.

MQTT with Home Assistant discovery (:mod:`.mqtt`, ``MQTT_URL``) and ``/metrics``,
``/health``, ``/ready`` (:mod:`.http`, ``HTTP_LISTEN``), both fed by :class:`.feed.Feed`
after the durable store. Each is an optional extra of the package, imported only when its
variable is set (``bench/startup.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from octomon.errors import ExitCode, OctomonError

if TYPE_CHECKING:
    from octomon.clock import Clock
    from octomon.config import Settings
    from octomon.publish.feed import Feed, Output


class MissingExtra(OctomonError):
    """An output is configured but its optional package is not installed."""

    exit_code = ExitCode.CONFIG


def check_extras(settings: Settings) -> None:
    """Exit 2 with one line naming the extra when an output's package is missing."""
    from octomon.config_rules import missing_extra

    for name, value in (("MQTT_URL", settings.mqtt_url), ("HTTP_LISTEN", settings.http_listen)):
        problem = missing_extra(name) if value else None
        if problem:
            raise MissingExtra(problem)


def build_outputs(settings: Settings, clock: Clock) -> Feed | None:
    """The feed with the outputs the settings ask for; None when neither is set (then
    paho and prometheus_client are never imported)."""
    if not (settings.mqtt_url or settings.http_listen):
        return None
    from octomon.publish.feed import Feed

    check_extras(settings)
    outputs: list[Output] = []
    if settings.http_listen:
        from octomon.publish.http import HttpOutput

        outputs.append(HttpOutput.start(settings.http_listen, clock))
    if settings.mqtt_url:
        from octomon.publish.mqtt import MqttOutput

        outputs.append(MqttOutput.from_settings(settings))
    from octomon.billing.prices import pricing

    return Feed(outputs, settings.cache_dir, settings.gas_calorific_value, pricing(settings))
