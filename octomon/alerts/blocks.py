"""Block Kit layout of one alert: the message Slack shows (and its plain fallback).

Text is escaped for mrkdwn and cut to Slack's limits (larger is refused with
``invalid_blocks``); any registered secret that slipped into an error is masked.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

from octomon import __version__, redact
from octomon.alerts.messages import Alert, Level

EMOJI = {
    Level.INFO: ":information_source:",
    Level.WARNING: ":warning:",
    Level.ERROR: ":red_circle:",
}
RECOVERY_EMOJI = ":white_check_mark:"
# Slack's limits for Block Kit (larger is refused with invalid_blocks).
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
FIELDS_PER_SECTION = 10
FALLBACK_MAX = 3000


def _escape(text: str) -> str:
    """mrkdwn's three control characters (so ``<`` cannot make a link or a mention)."""
    return _clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clean(text: str) -> str:
    """Any registered secret that slipped into an error message is masked here too."""
    return redact.scrub(text)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def emoji_for(alert: Alert) -> str:
    return RECOVERY_EMOJI if alert.recovery else EMOJI[alert.level]


def build_payload(alert: Alert, host: str) -> dict[str, Any]:
    """Block Kit: level emoji + title, the text, host/component/details as fields, time.

    ``text`` is the plain fallback shown in notifications and by clients without blocks.
    """
    emoji = emoji_for(alert)
    title = _clean(alert.title)
    at = alert.at.astimezone(timezone.utc)
    stamp = at.strftime("%Y-%m-%d %H:%M:%S UTC")
    fallback = f"{emoji} {title} [{alert.level.value}] on {host}"
    if alert.text:
        fallback += f": {_clean(alert.text)}"
    details = {"host": host, "component": alert.component, **alert.fields}
    field_items = [
        {"type": "mrkdwn", "text": _cut(f"*{_escape(str(k))}*\n{_escape(str(v))}", FIELD_TEXT_MAX)}
        for k, v in details.items()
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _cut(f"{emoji} {title}", HEADER_MAX),
                "emoji": True,
            },
        }
    ]
    if alert.text:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(_escape(alert.text), SECTION_TEXT_MAX)},
            }
        )
    for i in range(0, len(field_items), FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": field_items[i : i + FIELDS_PER_SECTION]})
    # <!date^…> renders in each reader's own time zone; the text after | is the fallback.
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"{alert.level.value} · octomon {__version__} · "
                    f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time_secs}}|{stamp}>",
                }
            ],
        }
    )
    return {"text": _cut(fallback, FALLBACK_MAX), "blocks": blocks}
