"""A whole monitor from its parts (SPEC §4): the writer, the tally, the electricity stream,
the status board and the scheduler with its jobs. :mod:`octomon.wiring` gives it the real
parts; the tests give fakes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from octomon.clock import Clock, utcnow
from octomon.units import ELECTRICITY

if TYPE_CHECKING:
    from octomon.alerts.policy import AlertPolicy
    from octomon.daemon.monitor import Client, Monitor
    from octomon.daemon.schedule import Job
    from octomon.daemon.status import Alerts, Announcer, Status
    from octomon.daemon.stream import Counter
    from octomon.daemon.writer import CacheLike, Sink, SyncFn, Writer
    from octomon.octopus.budget import Budget
    from octomon.octopus.published import Pricing
    from octomon.publish.feed import Feed
    from octomon.state import StateStore

JOB_HEADROOM = 5  # API calls per hour a scheduled job leaves free for telemetry (SPEC §4.9)

Filler = Callable[["Status", datetime], None]


class Parts:
    """What the daemon's jobs share with the monitor: its writer, tally and alerts."""

    def __init__(
        self, writer: Writer, tally: Counter, alerts: Announcer, policy: AlertPolicy
    ) -> None:
        self.writer, self.tally, self.alerts, self.policy = writer, tally, alerts, policy


def assemble_monitor(
    *,
    client: Client,
    cache: CacheLike,
    sink: Sink | None,
    store: StateStore,
    budget: Budget,
    policy: AlertPolicy,
    alerter: Alerts,
    sync: SyncFn,
    poll_interval: int,
    cache_dir: Path,
    stop: threading.Event,
    health_check_seconds: float = 30.0,
    device_id: str | None = None,
    jobs: Callable[[Parts], Sequence[tuple[Job, Filler | None]]] | None = None,
    offset: timedelta | None = None,
    clock: Clock = utcnow,
    feed: Feed | None = None,
    calorific_value: Decimal = Decimal("39.5"),
    pricing: Pricing | None = None,
) -> Monitor:
    """A whole monitor from its parts: the writer, the tally, the electricity stream, the
    status board and the scheduler with ``jobs`` (each at start, at the installation's
    ``offset``). The tests give fakes for the parts."""
    from octomon.daemon.monitor import Monitor
    from octomon.daemon.schedule import Scheduler
    from octomon.daemon.status import Announcer, Board
    from octomon.daemon.stream import Stream, telemetry_of
    from octomon.daemon.today import TodayFromTally
    from octomon.daemon.writer import Writer
    from octomon.store.tally import Tally, TallyRecorder

    alerts = Announcer(alerter)
    writer = Writer(
        cache=cache,
        sink=sink,
        sync=sync,
        policy=policy,
        emit=alerts.emit,
        cache_dir=cache_dir,
        stop=stop,
    )
    # SPEC §10: counted once stored; carried in state.json until appended (store.tally)
    tally: Counter = TallyRecorder(Tally(cache_dir), carry=store)
    today = TodayFromTally(cache_dir, calorific_value, pricing)  # "today", from the tally
    tally = today.recorder(tally)
    if feed is not None:  # SPEC §13: the outputs see every durable store, gas included
        tally = feed.recorder(tally)

    def lost(start: datetime, jump: datetime, now: datetime) -> None:
        alerts.emit(policy.range_lost(now, start, jump))

    stream = Stream(
        ELECTRICITY,
        fetch=telemetry_of(client, ELECTRICITY),
        writer=writer,
        tally=tally,
        lost=lost,
    )
    scheduler, fillers = None, []
    if jobs is not None:
        assert offset is not None
        scheduler = Scheduler(budget, offset=offset, headroom=JOB_HEADROOM)
        for job, fill in jobs(Parts(writer, tally, alerts, policy)):
            scheduler.add(job, clock() - offset)  # at start, then every interval at the offset
            if fill is not None:
                fillers.append(fill)
    fillers.append(today.fill)  # after the gas job's: the tally's figures win when it has any
    if feed is not None:
        fillers.append(feed.fill)  # last: it publishes what the others filled in
    return Monitor(
        client=client,
        stream=stream,
        writer=writer,
        store=store,
        budget=budget,
        policy=policy,
        alerts=alerts,
        poll_interval=poll_interval,
        cache_dir=cache_dir,
        health_check_seconds=health_check_seconds,
        device_id=device_id,
        scheduler=scheduler,
        board=Board(cache_dir, fillers),
        closers=[feed.close] if feed is not None else [],
    )
