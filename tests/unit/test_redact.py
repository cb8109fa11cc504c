"""Secret masking and the scrubbing log formatter."""

from __future__ import annotations

import io
import logging

from octomon import logs, redact


def test_mask_forms() -> None:
    assert redact.mask("sk_live_0123456789abcdef89ab") == "sk_l…89ab"
    assert redact.mask("short") == "****"
    assert redact.mask("") == ""
    assert (
        redact.mask_url("https://hooks.slack.com/services/T1/B2/XYZ") == "https://hooks.slack.com/…"
    )


def test_scrub_replaces_registered_secrets_longest_first() -> None:
    redact.register("sk_live_0123456789abcdef89ab")
    redact.register_url("https://hooks.slack.com/services/T1/B2/SECRETSECRET")
    text = (
        "key=sk_live_0123456789abcdef89ab url=https://hooks.slack.com/services/T1/B2/SECRETSECRET"
        " path=/services/T1/B2/SECRETSECRET"
    )
    out = redact.scrub(text)
    assert "0123456789abcdef" not in out
    assert "SECRETSECRET" not in out
    assert "sk_l…89ab" in out and "https://hooks.slack.com/…" in out


def test_log_formatter_scrubs_messages_args_and_tracebacks() -> None:
    secret = "influx-token-abcdefghijklmnop"
    redact.register(secret)
    stream = io.StringIO()
    logs.setup("debug", stream=stream)
    try:
        third_party = logging.getLogger("urllib3.connectionpool")
        third_party.debug("GET /api?token=%s HTTP/1.1", secret)
        try:
            raise ValueError(f"bad {secret}")
        except ValueError:
            logging.getLogger("octomon").exception("failed")
    finally:
        logs.setup("info")
    output = stream.getvalue()
    assert "GET /api?token=" in output and "bad " in output
    assert secret not in output


def test_info_level_quiets_third_party_debug() -> None:
    stream = io.StringIO()
    logs.setup("info", stream=stream)
    logging.getLogger("urllib3.connectionpool").debug("noise")
    assert "noise" not in stream.getvalue()
