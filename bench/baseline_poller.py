"""The baseline of bench/daemon.py: a process that only polls the simulator and posts.

Every ``POLL_SECONDS`` it asks the Home Mini's telemetry of the last three minutes (one
GraphQL request, ``requests``: readings arrive 10-60 s late, so a window that overlaps) and
posts the readings it has not posted yet to InfluxDB's write API as line protocol (one
request); it keeps nothing on disk. One line per cycle on stdout
(``cycle stored N``), so bench/daemon.py samples /proc at the same points as for octomon.

    python bench/baseline_poller.py GRAPHQL_URL API_KEY DEVICE_ID INFLUX_URL POLL_SECONDS
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import datetime, timedelta, timezone
from types import FrameType

import requests

TOKEN = """
mutation ObtainToken($input: ObtainJSONWebTokenInput!) {
  obtainKrakenToken(input: $input) { token }
}
"""
TELEMETRY = """
query Telemetry($deviceId: String!, $start: DateTime, $end: DateTime,
                $grouping: TelemetryGrouping) {
  smartMeterTelemetry(deviceId: $deviceId, start: $start, end: $end, grouping: $grouping) {
    readAt consumption consumptionDelta demand costDelta costDeltaWithTax export
  }
}
"""
FIELDS = (
    ("consumptionDelta", "consumption_delta"),
    ("demand", "demand"),
    ("costDelta", "cost_delta"),
    ("consumption", "consumption"),
    ("costDeltaWithTax", "cost_delta_with_tax"),
    ("export", "export"),
)


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def line(device: str, item: dict[str, str | None]) -> str | None:
    fields = ",".join(f"{name}={float(v)!r}" for key, name in FIELDS if (v := item.get(key)))
    if not fields:
        return None
    at = datetime.fromisoformat(str(item["readAt"]).replace("Z", "+00:00"))
    return f"energy_consumption,device_id={device},source=bench {fields} {int(at.timestamp())}"


def main() -> int:
    url, key, device, influx, poll = sys.argv[1:6]
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    session = requests.Session()
    answer = session.post(
        url, json={"query": TOKEN, "variables": {"input": {"APIKey": key}}}, timeout=10
    )
    token = answer.json()["data"]["obtainKrakenToken"]["token"]
    seen: set[str] = set()
    write = f"{influx.rstrip('/')}/api/v2/write?org=bench&bucket=bench&precision=s"
    while not stop.is_set():
        now = datetime.now(timezone.utc)
        variables = {
            "deviceId": device,
            "start": iso(now - timedelta(minutes=3)),
            "end": iso(now),
            "grouping": "TEN_SECONDS",
        }
        try:
            answer = session.post(
                url,
                json={"query": TELEMETRY, "variables": variables},
                headers={"Authorization": token},
                timeout=10,
            )
        except requests.ConnectionError:  # the server closed the idle connection: once more
            answer = session.post(
                url,
                json={"query": TELEMETRY, "variables": variables},
                headers={"Authorization": token},
                timeout=10,
            )
        items = answer.json().get("data", {}).get("smartMeterTelemetry") or []
        new = [item for item in items if str(item["readAt"]) not in seen]
        lines = [x for item in new if (x := line(device, item)) is not None]
        if lines:
            posted = session.post(
                write,
                data="\n".join(lines).encode(),
                headers={"Authorization": "Token bench"},
                timeout=10,
            )
            posted.raise_for_status()
        seen = {str(item["readAt"]) for item in items}  # what the next window overlaps
        print(f"cycle stored {len(lines)}", flush=True)
        stop.wait(float(poll))
    return 0


if __name__ == "__main__":
    sys.exit(main())
