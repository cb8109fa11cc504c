"""Reconciliation per UK day (daemon.reconcile) and the alert's wording (alerts.policy)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from octomon.alerts.policy import AlertPolicy
from octomon.billing.reconcile import day_report, half_hour_recons
from octomon.billing.settled import MeterData, SettledData
from octomon.octopus.consumption import Meter
from octomon.readings import Reading
from octomon.store.tally import SLOTS, TallyData, merge
from octomon.uktime import half_hours

UTC = timezone.utc
IMPORT = Meter("electricity", "import", "1900051510123", "21E5151012")


def settled(day: date, kwh: float) -> SettledData:
    return SettledData({IMPORT.key: MeterData(IMPORT, {hh: kwh for hh in half_hours(day)})})


def tally(day: date, per_half_hour: int, wh: int) -> TallyData:
    """``per_half_hour`` readings of ``wh`` each in every half-hour of ``day``."""
    fuels: dict[str, dict[int, tuple[int, int]]] = {}
    readings = [
        Reading(hh + timedelta(seconds=10 * i), "d", consumption_delta=wh / 1000)
        for hh in half_hours(day)
        for i in range(per_half_hour)
    ]
    merge(fuels, readings)
    return TallyData(fuels)


def test_the_clock_change_days_expect_8280_and_9000_readings() -> None:
    for day, n in ((date(2026, 3, 29), 46), (date(2026, 10, 25), 50)):
        report = day_report(settled(day, 0.18), tally(day, SLOTS, 1), day)
        assert report.half_hours == n and report.expected_readings == n * SLOTS
        assert report.readings == n * SLOTS and report.coverage == 1.0
        assert report.settled_kwh is not None and abs(report.settled_kwh - 0.18 * n) < 1e-9
        assert report.home_mini_kwh == n * SLOTS / 1000
        assert report.missing == [] and report.judged and not report.short


def test_short_on_energy_or_on_readings_and_missing_spans() -> None:
    day = date(2026, 11, 30)
    # every reading, 4 % of the energy missing: under the 5 % threshold
    ok = day_report(settled(day, 0.1875), tally(day, SLOTS, 1), day)  # 0.18 of 0.1875
    assert ok.difference_pct is not None and abs(ok.difference_pct - 4.0) < 1e-9
    assert not ok.short
    # 94 % of the readings, the energy all there: short on readings
    few = day_report(settled(day, 0.169), tally(day, 169, 1), day)
    assert few.readings == 169 * 48 and few.short
    assert few.missing == [
        (half_hours(day)[0], half_hours(day)[-1] + timedelta(minutes=30), 11 * 48)
    ]
    # before the tally began: not judged, no spans
    early = day_report(settled(day, 0.1), TallyData(), day)
    assert not early.tallied and not early.judged and early.missing == []


def test_half_hour_points_from_the_tally_start() -> None:
    day = date(2026, 11, 30)
    data = settled(day, 0.25)
    hhs = list(
        half_hour_recons(
            data,
            tally(day, 90, 2),
            datetime(2026, 11, 29, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
        )
    )
    assert len(hhs) == 48
    first = hhs[0]
    assert first.readings == 90 and first.coverage == 0.5 and abs(first.difference - 0.07) < 1e-12
    assert first.line() == (
        "energy_reconciliation,fuel=electricity settled=0.25,home_mini=0.18,"
        f"difference=0.07,readings=90i,coverage=0.5 {int(first.start.timestamp())}"
    )


def test_the_alert_says_what_the_spec_says() -> None:
    now = datetime(2026, 12, 1, 9, 10, tzinfo=UTC)
    [alert] = AlertPolicy().home_mini_short(now, date(2026, 11, 30), 11.82, 11.34, "8,101 of 8,640")
    assert alert.level.value == "warning"
    assert alert.text == (
        "the Home Mini missed 4.1% of 30 Nov: settled 11.82 kWh, Home Mini 11.34 kWh; "
        "power-cycle it if this repeats"
    )
    assert alert.fields == {"day": "2026-11-30", "readings": "8,101 of 8,640"}
