"""The connection checks behind `test-octopus`, `test-influx`, `test-slack`, `verify-config
--online` and the wizard: each returns the one line that says what it found, or raises the
client's typed error (the CLI turns it into a message)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from octomon.config import Settings


def octopus_line(settings: Settings) -> str:
    from octomon.octopus import probe as octopus

    result = octopus.check(settings)
    from octomon.readings import format_time

    when = format_time(result.reading.read_at) if result.reading else "no reading yet"
    line = f"device {result.device_id}, latest reading {when}"
    if result.gas_meter is not None:
        gas_when = format_time(result.gas_reading.read_at) if result.gas_reading else "none yet"
        line += f"; gas device {result.gas_meter.device_id}, latest half-hour {gas_when}"
    return line


def influx_line(settings: Settings, write_test_point: bool) -> str:
    from octomon.store import probe

    return probe.check(settings, write_test_point=write_test_point).summary


def slack_line(settings: Settings) -> str:
    from octomon.alerts import slack

    slack.send_test(settings)
    return "test message sent"
