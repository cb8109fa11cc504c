"""Tariffs end to end: the simulator over HTTP, octomon's pricing, a real VictoriaMetrics.

Every expected price is the sim's published pence (``sim.rest``'s tables and its Agile
function) converted by hand here: pence x 1.05 for VAT, / 100 for GBP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from octomon.billing.tariffs import Tariffs
from octomon.config import night_window
from octomon.errors import InfluxUnavailable
from octomon.octopus.budget import Budget
from octomon.octopus.pricebook import half_hour_floor
from octomon.octopus.published import Pricing
from octomon.octopus.rest import RestClient
from octomon.sim import SimHomeMini, SimServer
from octomon.sim import account as ids
from octomon.state import StateStore
from octomon.store.influx import InfluxSink
from tests.helpers.clock import ManualClock
from tests.helpers.services import VictoriaMetrics

pytestmark = pytest.mark.integration

UK = ZoneInfo("Europe/London")
UTC = timezone.utc
FIXED_DD = (0.250005, 0.2381)  # 23.81 p exc. VAT
FIXED_NON_DD = (0.263025, 0.2505)  # 25.05 p
FIXED_STANDING_DD = (0.478485, 0.4557)
AGILE_STANDING = (0.4998, 0.476)
GAS_DD = (0.05985, 0.057)
GAS_NON_DD = (0.06405, 0.061)
GAS_STANDING_DD = (0.29862, 0.2844)
GAS_STANDING_NON_DD = (0.3276, 0.312)
E7_DAY = (0.29505, 0.281)
E7_NIGHT = (0.132174, 0.12588)


def uk(day: date, hh: int = 0, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), UK).astimezone(UTC)


@dataclass
class Rig:
    sim: SimHomeMini
    clock: ManualClock
    tariffs: Tariffs
    vm: VictoriaMetrics

    def agile(self, t: datetime) -> tuple[float, float]:
        exc = self.sim.rest.agile_price(t)
        return float(exc * Decimal("1.05") / 100), float(exc / 100)

    def read(self, field: str, fuel: str, wait_for: int) -> dict[int, tuple[str, float]]:
        """{unix seconds: (tariff_code, value)} of ``energy_tariff_<field>`` for ``fuel``."""
        points = self.vm.points(f"energy_tariff_{field}", wait_for=wait_for)
        out: dict[int, tuple[str, float]] = {}
        for labels, ts, value in points:
            if labels["fuel"] == fuel:
                assert labels["direction"] == "import"
                assert ts not in out, "one point per half-hour"
                out[ts] = (labels["tariff_code"], value)
        return out


MakeRig = Callable[..., Rig]


@pytest.fixture
def make_rig(tmp_path: Path, victoria: VictoriaMetrics) -> Iterator[MakeRig]:
    servers: list[SimServer] = []

    def make(
        built: datetime,
        now: datetime,
        *,
        payment: str = "direct_debit",
        night: str = "00:30-07:30",
        economy7: bool = False,
        switch_at: datetime | None = None,
    ) -> Rig:
        clock = ManualClock(built)
        sim = SimHomeMini(clock=clock)
        sim.rest.economy7 = economy7
        sim.rest.page_size = 50  # several pages per request: `next` is followed
        if switch_at is not None:
            sim.rest.switch_at = switch_at
        clock.now = now
        server = SimServer(sim).start()
        servers.append(server)
        cache_dir = tmp_path / "cache"
        store = StateStore(cache_dir)
        client = RestClient(
            api_key=sim.api_key, base_url=server.rest_url, budget=Budget(store, 75), clock=clock
        )
        sink = InfluxSink(victoria.url, "vm-token", "home", "octopus_energy")
        tariffs = Tariffs(
            client,
            sim.account_number,
            cache_dir,
            pricing=Pricing(payment, night_window(night)),
            state=store,
            sink=sink,
        )
        return Rig(sim, clock, tariffs, victoria)

    yield make
    for server in servers:
        server.stop()


def test_a_day_with_a_tariff_switch_prices_each_half_hour_by_the_agreement_then(
    make_rig: MakeRig,
) -> None:
    day = date(2026, 1, 31)
    switch = uk(day, 13, 30)  # mid-day: 27 half-hours fixed, 21 Agile
    rig = make_rig(uk(date(2026, 2, 10), 12), uk(date(2026, 2, 4), 12), switch_at=switch)
    run = rig.tariffs.refresh(rig.clock())
    assert run.stored and run.calls >= 5
    rates = rig.read("unit_rate", "electricity", wait_for=48 * 8)
    exc = rig.read("unit_rate_exc_vat", "electricity", wait_for=48 * 8)
    for i in range(48):
        t = uk(day) + timedelta(minutes=30 * i)
        key = int(t.timestamp())
        if t < switch:
            assert rates[key] == (ids.FIXED_IMPORT_TARIFF, FIXED_DD[0]), t
            assert exc[key] == (ids.FIXED_IMPORT_TARIFF, FIXED_DD[1]), t
        else:
            inc_vat, exc_vat = rig.agile(t)
            assert rates[key] == (ids.AGILE_IMPORT_TARIFF, inc_vat), t
            assert exc[key] == (ids.AGILE_IMPORT_TARIFF, exc_vat), t
    standing = rig.read("standing_charge", "electricity", wait_for=8)
    assert standing[int(uk(day).timestamp())] == (ids.FIXED_IMPORT_TARIFF, FIXED_STANDING_DD[0])
    next_day = int(uk(day + timedelta(days=1)).timestamp())
    assert standing[next_day] == (ids.AGILE_IMPORT_TARIFF, AGILE_STANDING[0])
    assert any(v < 0 for _, v in rates.values()), "negative Agile prices are kept"


def test_the_direct_debit_row_by_default(make_rig: MakeRig) -> None:
    rig = make_rig(uk(date(2026, 2, 10), 12), uk(date(2026, 1, 25), 12))
    rig.tariffs.refresh(rig.clock())
    t = int(uk(date(2026, 1, 22), 9).timestamp())
    assert rig.read("unit_rate", "electricity", 48)[t] == (ids.FIXED_IMPORT_TARIFF, FIXED_DD[0])
    assert rig.read("unit_rate", "gas", 48)[t] == (ids.GAS_TARIFF, GAS_DD[0])
    assert rig.read("unit_rate_exc_vat", "gas", 48)[t] == (ids.GAS_TARIFF, GAS_DD[1])
    midnight = int(uk(date(2026, 1, 22)).timestamp())
    assert rig.read("standing_charge", "gas", 8)[midnight] == (ids.GAS_TARIFF, GAS_STANDING_DD[0])


def test_the_non_direct_debit_row_with_the_setting(make_rig: MakeRig) -> None:
    rig = make_rig(uk(date(2026, 2, 10), 12), uk(date(2026, 1, 25), 12), payment="non_direct_debit")
    rig.tariffs.refresh(rig.clock())
    t = int(uk(date(2026, 1, 22), 9).timestamp())
    assert rig.read("unit_rate", "electricity", 48)[t] == (
        ids.FIXED_IMPORT_TARIFF,
        FIXED_NON_DD[0],
    )
    assert rig.read("unit_rate_exc_vat", "electricity", 48)[t][1] == FIXED_NON_DD[1]
    assert rig.read("unit_rate", "gas", 48)[t] == (ids.GAS_TARIFF, GAS_NON_DD[0])
    midnight = int(uk(date(2026, 1, 22)).timestamp())
    assert rig.read("standing_charge", "gas", 8)[midnight] == (
        ids.GAS_TARIFF,
        GAS_STANDING_NON_DD[0],
    )
    assert rig.read("standing_charge_exc_vat", "gas", 8)[midnight][1] == GAS_STANDING_NON_DD[1]


@pytest.mark.parametrize(
    ("day", "hours"), [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 3, 27), 24)]
)
def test_standing_charges_per_uk_day_across_the_clock_changes(
    make_rig: MakeRig, day: date, hours: int
) -> None:
    rig = make_rig(uk(day + timedelta(days=15), 12), uk(day + timedelta(days=3), 12))
    rig.tariffs.refresh(rig.clock())
    standing = rig.read("standing_charge", "gas", wait_for=8)
    start, end = uk(day), uk(day + timedelta(days=1))
    assert (end - start) == timedelta(hours=hours)
    assert standing[int(start.timestamp())] == (ids.GAS_TARIFF, GAS_STANDING_DD[0])
    assert standing[int(end.timestamp())] == (ids.GAS_TARIFF, GAS_STANDING_DD[0])
    assert not [ts for ts in standing if start.timestamp() < ts < end.timestamp()]
    rates = rig.read("unit_rate", "gas", wait_for=48 * 8)
    inside = [ts for ts in rates if start.timestamp() <= ts < end.timestamp()]
    assert len(inside) == hours * 2  # every half-hour of the UK day, no more
    electricity = rig.read("unit_rate", "electricity", wait_for=48 * 8)
    assert len([ts for ts in electricity if start.timestamp() <= ts < end.timestamp()]) == hours * 2


@pytest.mark.parametrize("night", ["00:30-07:30", "23:30-06:30"])
def test_an_economy7_tariff_gets_night_prices_exactly_in_the_night_window(
    make_rig: MakeRig, night: str
) -> None:
    rig = make_rig(uk(date(2026, 7, 10), 12), uk(date(2026, 7, 5), 12), economy7=True, night=night)
    rig.tariffs.refresh(rig.clock())
    rates = rig.read("unit_rate", "electricity", wait_for=48 * 8)
    exc = rig.read("unit_rate_exc_vat", "electricity", wait_for=48 * 8)
    lo, hi = night_window(night)
    day = date(2026, 7, 2)  # BST: the window is UTC, so UK 01:30-08:30 for 00:30-07:30
    nights = 0
    for i in range(48):
        t = uk(day) + timedelta(minutes=30 * i)
        minute = t.hour * 60 + t.minute
        is_night = lo <= minute < hi if lo < hi else (minute >= lo or minute < hi)
        nights += is_night
        want = E7_NIGHT if is_night else E7_DAY
        assert rates[int(t.timestamp())] == (ids.ECONOMY7_IMPORT_TARIFF, want[0]), t
        assert exc[int(t.timestamp())] == (ids.ECONOMY7_IMPORT_TARIFF, want[1]), t
    assert nights == 14


def test_influxdb_down_loses_no_tariff_point(make_rig: MakeRig) -> None:
    rig = make_rig(uk(date(2026, 2, 10), 12), uk(date(2026, 2, 4), 17))
    rig.vm.stop()
    with pytest.raises(InfluxUnavailable):
        rig.tariffs.refresh(rig.clock())
    assert rig.tariffs.cursors() == {}  # nothing was acknowledged: the cursor stays
    assert rig.tariffs.cached() is not None  # the command can still answer
    rig.clock.advance(hours=1)
    rig.vm.start()
    run = rig.tariffs.refresh(rig.clock())
    assert run.stored
    # 7 UK days back to 23:00 UK tomorrow, every half-hour, and every UK midnight.
    first, end = uk(date(2026, 1, 28)), uk(date(2026, 2, 5), 23)
    expected = int((end - first).total_seconds() // 1800)
    assert len(rig.read("unit_rate", "electricity", wait_for=2 * expected)) == expected
    assert len(rig.read("unit_rate", "gas", wait_for=2 * expected)) == expected
    assert len(rig.read("standing_charge", "gas", wait_for=16)) == 9
    cursor = rig.tariffs.cursors()[("electricity", "import")]
    assert cursor.prices == end and cursor.charges == date(2026, 2, 5)


def test_tariff_since_stores_older_rates(
    tmp_path: Path, victoria: VictoriaMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.cli import invoke, set_clock
    from tests.helpers.clock import ManualClock, uk_today_at

    clock = ManualClock(uk_today_at(17, 10) - timedelta(days=1))  # the command's clock too
    set_clock(monkeypatch, clock)
    sim = SimHomeMini(clock=clock)
    with SimServer(sim) as server:
        env = {
            "OCTOPUS_API_KEY": sim.api_key,
            "OCTOPUS_ACCOUNT_NUMBER": sim.account_number,
            "OCTOPUS_API_URL": server.url,
            "OCTOPUS_REST_URL": server.rest_url,
            "INFLUXDB_URL": victoria.url,
            "INFLUXDB_TOKEN": "vm-token",
            "INFLUXDB_ORG": "home",
            "INFLUXDB_BUCKET": "octopus_energy",
        }
        now = clock()
        since = now.astimezone(UK).date() - timedelta(days=20)  # before the switch
        result = invoke("tariff", "--since", since.isoformat(), env=env)
    assert result.exit_code == 0, result.output
    assert "stored " in result.output and " energy_tariff points in InfluxDB" in result.output
    start = uk(since)
    past = int((half_hour_floor(now) - start).total_seconds() // 1800) + 1  # the current one
    rates = {
        ts: v
        for labels, ts, v in victoria.points("energy_tariff_unit_rate", wait_for=2 * past)
        if labels["fuel"] == "electricity" and ts < now.timestamp()
    }
    assert len(rates) == past  # every half-hour from the UK day asked for, to now
    assert min(rates) == int(start.timestamp())
    first = {
        labels["tariff_code"]
        for labels, ts, _ in victoria.points("energy_tariff_unit_rate")
        if ts == int(start.timestamp()) and labels["fuel"] == "electricity"
    }
    assert first == {ids.FIXED_IMPORT_TARIFF}


def test_a_full_disk_for_tariffs_json_does_not_stop_the_storing(
    make_rig: MakeRig, tmp_path: Path
) -> None:
    rig = make_rig(uk(date(2026, 2, 10), 12), uk(date(2026, 2, 4), 17))
    (tmp_path / "cache").mkdir(exist_ok=True)
    (tmp_path / "cache" / "tariffs.json").mkdir()  # any write of it fails (EISDIR)
    run = rig.tariffs.refresh(rig.clock())
    assert run.stored
    first, end = uk(date(2026, 1, 28)), uk(date(2026, 2, 5), 23)
    expected = int((end - first).total_seconds() // 1800)
    assert len(rig.read("unit_rate", "gas", wait_for=2 * expected)) == expected
    assert rig.tariffs.cursors()[("gas", "import")].prices == end


def test_a_corrected_payment_method_re_prices_the_stored_points_without_a_call(
    make_rig: MakeRig,
) -> None:
    """The daemon stored a week under direct debit; OCTOPUS_PAYMENT_METHOD is corrected to
    non_direct_debit: its next run writes every kept half-hour and day again with the other
    method's price (same series and timestamps: InfluxDB keeps the newer), from tariffs.json,
    no rate fetched; while InfluxDB is away that waits, and happens once it is back."""
    from octomon.daemon.jobs import TariffsJob
    from octomon.octopus.published import Pricing

    rig = make_rig(uk(date(2026, 2, 10), 12), uk(date(2026, 1, 25), 12))
    TariffsJob(rig.tariffs).run(rig.clock())
    stored = rig.read("unit_rate", "electricity", wait_for=48 * 8)
    gas_days = rig.read("standing_charge", "gas", wait_for=8)
    assert {v for _, v in stored.values()} == {FIXED_DD[0]}
    state = StateStore(rig.tariffs.cache.path.parent)
    assert state.load().tariff_priced_as == "direct_debit 00:30-07:30"
    ledger, requests = len(state.load().calls), len(rig.sim.rest.calls)

    def corrected(sink: InfluxSink) -> Tariffs:
        return Tariffs(
            rig.tariffs.client,
            rig.sim.account_number,
            rig.tariffs.cache.path.parent,
            pricing=Pricing("non_direct_debit", night_window("00:30-07:30")),
            state=state,
            sink=sink,
        )

    rig.clock.advance(minutes=5)
    away = InfluxSink("http://127.0.0.1:9", "vm-token", "home", "octopus_energy")
    with pytest.raises(InfluxUnavailable):
        TariffsJob(corrected(away)).run(rig.clock())
    assert state.load().tariff_priced_as == "direct_debit 00:30-07:30"  # not done yet

    rig.clock.advance(minutes=5)
    run = corrected(InfluxSink(rig.vm.url, "vm-token", "home", "octopus_energy")).refresh(
        rig.clock()
    )
    assert run.calls == 0 and run.points == 0
    assert run.repriced == 2 * len(stored) + 2 * len(gas_days)  # both fuels, each day's charge
    assert len(state.load().calls) == ledger  # the budget ledger: no request for it
    assert len(rig.sim.rest.calls) == requests
    assert state.load().tariff_priced_as == "non_direct_debit 00:30-07:30"
    # VictoriaMetrics keeps both samples of a timestamp (InfluxDB keeps the newer one):
    # every stored half-hour and day was written once more, with the other method's price.
    unit = rig.vm.export("unit_rate", wait_for=len(stored), measurement="energy_tariff")
    for ts in stored:
        assert sorted(unit[ts]) == sorted([FIXED_DD[0], FIXED_NON_DD[0], GAS_DD[0], GAS_NON_DD[0]])
    standing = rig.vm.export("standing_charge", measurement="energy_tariff")
    for ts in gas_days:
        assert GAS_STANDING_NON_DD[0] in standing[ts]
    again = corrected(InfluxSink(rig.vm.url, "vm-token", "home", "octopus_energy"))
    assert again.refresh(rig.clock()).repriced == 0  # said and done: once
