"""Line protocol back to readings, for fake sinks that check what they were sent."""

from __future__ import annotations

from datetime import datetime, timezone

from octomon.readings import Reading


def readings_of(body: bytes | str) -> list[Reading]:
    """Parse octomon's own ``energy_consumption`` lines (no escaped characters)."""
    text = body.decode() if isinstance(body, bytes) else body
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        series, fields, stamp = line.rsplit(" ", 2)
        tags = dict(part.split("=", 1) for part in series.split(",")[1:])
        values = {k: float(v) for k, v in (f.split("=", 1) for f in fields.split(","))}
        when = datetime.fromtimestamp(int(stamp), tz=timezone.utc)
        out.append(Reading(when, tags["device_id"], **values))
    return out
