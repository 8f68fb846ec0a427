"""The plant calendar and micro-stops against the ledger, through a real InfluxDB: a plant on two 12-hour shifts
with meal breaks and Sundays off, simulated (through the gateway core) from Saturday 22:00 to Sunday 10:00 plant
time: the night shift with its two breaks, its end on Sunday morning and the day off after it. The report's
planned time, time outside shifts, OEE over planned time and micro-stops, and the boards' micro-stops, equal the
ledger; `ftel report --shift DATE/NAME` reads the calendar's shift."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dashboards import queries as q
from dashboards.report_data import collect
from dashboards.settle import Settled, SettleInputs, settle
from ftel.app.cli import main
from ftel.contract.states import STATE_ORDER, MachineState, MachineType
from ftel.plant.calendar import Calendar, default_calendar
from ftel.plant.layout import default_plant
from ftel.plant.orders import OrderBook
from ftel.plant.stops import micro_stop_limits_ms
from ftel.storage.query import InfluxQuery
from ftel.storage.schema import PLANNED_INSIDE, PLANNED_OUTSIDE, Tag, state_field
from ftel.storage.writer import RetryPolicy, make_writer
from simulators.backfill import backfill
from simulators.ledger import LedgerRow, plant_ledger
from tests.calendars import TWO_TWELVES, two_twelves
from tests.support import Services, ftel_env, unique

pytestmark = pytest.mark.integration

WINDOW_MS = 60_000
START = int(datetime(2026, 11, 14, 22, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
END = START + 12 * 3_600_000


@dataclass(frozen=True)
class Filled:
    client: InfluxQuery
    database: str
    calendar: Calendar
    ledger: list[LedgerRow]


@pytest.fixture(scope="module")
def filled(services: Services) -> Filled:
    calendar = two_twelves()
    plant = default_plant()
    database = unique("calendar")
    settings = services.admin(database)
    backfill(
        plant,
        settings.influx,
        start_ms=START,
        end_ms=END,
        window_ms=WINDOW_MS,
        telemetry_interval_ms=600_000,
        calendar=calendar,
    )
    ledger = list(plant_ledger(plant, start_ms=START, end_ms=END, window_ms=WINDOW_MS, calendar=calendar))
    return Filled(InfluxQuery(settings.influx), database, calendar, ledger)


def _in(rows: Iterable[LedgerRow], start_ms: int, end_ms: int) -> list[LedgerRow]:
    return [r for r in rows if start_ms <= r.window_start < end_ms]


def _ledger_oee(rows: Iterable[LedgerRow], machine_type: MachineType) -> dict[str, float]:
    """Over planned time: the state times inside it, and the units of the windows inside it."""
    t: Counter[str] = Counter()
    for r in rows:
        if r.machine_type == machine_type.value and r.planned_ms:
            t.update(r.planned_state_ms)
            t["units"] += r.units
            t["defects"] += r.defects
    planned = sum(t[s.value] for s in STATE_ORDER) - t["OFFLINE"] - t["SETUP"] - t["MAINTENANCE"]
    rated = q.RATED_UNITS_PER_HOUR[machine_type] / q.MS_PER_HOUR
    return {
        "availability": t["RUNNING"] / planned,
        "performance": t["units"] / (t["RUNNING"] * rated),
        "quality": (t["units"] - t["defects"]) / t["units"],
        "oee": (t["units"] - t["defects"]) / (planned * rated),
    }


def _ledger_micro_stops(rows: Iterable[LedgerRow]) -> dict[tuple[str, str], tuple[int, int]]:
    found: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        key = (r.workshop, r.machine_type)
        found[key][0] += sum(r.micro_stops_by_reason.values())
        found[key][1] += sum(r.micro_stop_ms_by_reason.values())
    return {k: (n, ms) for k, (n, ms) in found.items() if n}


@pytest.mark.parametrize(("start_min", "end_min"), [(0, 720), (17, 697), (125, 510)])
def test_planned_time_time_outside_shifts_and_oee_over_planned_time_equal_the_ledger(
    filled: Filled, start_min: int, end_min: int
) -> None:
    start, end = START + start_min * WINDOW_MS, START + end_min * WINDOW_MS
    data = collect(filled.client, q.Binding(start, end), calendar=filled.calendar)
    rows = _in(filled.ledger, start, end)
    assert data.planned is not None
    assert data.planned.calendar_ms == filled.calendar.planned_ms(start, end)
    inside: Counter[str] = Counter()
    outside: Counter[str] = Counter()
    for r in rows:
        inside.update(r.planned_state_ms)
        outside.update({s: r.state_ms[s] - r.planned_state_ms[s] for s in r.state_ms})
    assert {s.value: ms for s, ms in data.planned.inside.items()} == {s.value: inside[s.value] for s in STATE_ORDER}
    assert {s.value: ms for s, ms in data.planned.outside.items()} == {s.value: outside[s.value] for s in STATE_ORDER}
    assert sum(data.planned.inside.values()) == data.planned.calendar_ms * 28
    assert data.planned.outside[MachineState.RUNNING] == 0
    assert data.planned.outside[MachineState.IDLE] > 0
    for machine_type in MachineType:
        expected = _ledger_oee(rows, machine_type)
        got = data.oee[machine_type]
        measured = {k: getattr(got, k) for k in expected}
        assert measured == pytest.approx(expected, rel=1e-9), machine_type
        # Over calendar time the breaks and the day off would be lost time: availability over planned time is
        # what a workshop that runs to its calendar is judged by.
        assert got.availability is not None
        assert got.availability > 0.6
    assert data.micro_stops
    measured_micro = {(m.workshop, m.machine_type): (m.stops, m.ms) for m in data.micro_stops}
    assert measured_micro == _ledger_micro_stops(rows)


def test_a_period_without_planned_time_has_no_oee_and_all_its_time_outside_shifts(filled: Filled) -> None:
    sunday_morning = (END - 2 * 3_600_000, END)  # Sunday 08:00 to 10:00: the day off
    data = collect(filled.client, q.Binding(*sunday_morning), calendar=filled.calendar)
    assert data.planned is not None
    assert data.planned.calendar_ms == 0
    assert data.oee == {}
    assert sum(data.planned.inside.values()) == 0
    assert sum(data.planned.outside.values()) == 2 * 3_600_000 * 28
    assert data.utilisation is not None  # over calendar time there is still something to say


def test_a_report_narrowed_to_machines_reads_their_own_windows_span_by_span(filled: Filled) -> None:
    machines = ("KNIT-003", "CARD-005")
    start, end = START + 17 * WINDOW_MS, END - 23 * WINDOW_MS
    data = collect(filled.client, q.Binding(start, end, variables={"machine": machines}), calendar=filled.calendar)
    rows = [r for r in _in(filled.ledger, start, end) if r.machine_id in machines]
    assert data.planned is not None
    inside: Counter[str] = Counter()
    for r in rows:
        inside.update(r.planned_state_ms)
    assert {s.value: ms for s, ms in data.planned.inside.items()} == {s.value: inside[s.value] for s in STATE_ORDER}
    assert sum(data.planned.inside.values()) == data.planned.calendar_ms * len(machines)
    for machine_type in (MachineType.KNITTING, MachineType.CARDING):
        got = data.oee[machine_type]
        assert {k: getattr(got, k) for k in ("availability", "oee")} == pytest.approx(
            {k: v for k, v in _ledger_oee(rows, machine_type).items() if k in ("availability", "oee")}, rel=1e-9
        )
    measured_micro = {(m.workshop, m.machine_type): (m.stops, m.ms) for m in data.micro_stops}
    assert measured_micro == _ledger_micro_stops(rows)


def test_the_boards_micro_stops_per_machine_type_equal_the_ledger(filled: Filled) -> None:
    query = q.micro_stops(micro_stop_limits_ms(), "machine_type", variables=q.WORKSHOP_VARIABLES)
    rows = filled.client.rows(q.bind(query.influxql, q.Binding(START, END)))
    measured = {r["machine_type"]: (r["stops"], r["ms"]) for r in rows}
    per_type: dict[str, tuple[int, int]] = {}
    for (_, machine_type), (n, ms) in _ledger_micro_stops(filled.ledger).items():
        before = per_type.get(machine_type, (0, 0))
        per_type[machine_type] = (before[0] + n, before[1] + ms)
    assert measured == per_type
    assert per_type["knitting"][0] >= 10


def test_report_command_reads_a_shift_of_the_calendar_by_date_and_name(
    services: Services,
    filled: Filled,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calendar_file = tmp_path / "calendar.yaml"
    calendar_file.write_text(TWO_TWELVES)
    settings = services.settings(filled.database)
    for name, value in ftel_env(settings).items():
        if name.startswith("FTEL_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("FTEL_CALENDAR", str(calendar_file))
    out = tmp_path / "night.html"
    assert main(["report", "--shift", "2026-11-14/night", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "night shift 2026-11-14 20:00-08:00 plant time (Asia/Shanghai)" in said
    page = out.read_text()
    assert 'id="planned-table"' in page
    assert 'id="micro-stops-table"' in page
    assert "OEE per machine type, over planned time" in page
    # Sunday has no shift: the calendar names what there is.
    assert main(["report", "--shift", "2026-11-15/day", "--out", str(out)]) == 2
    assert "no shift 'day' starts on 2026-11-15" in capsys.readouterr().err


def _settle(filled: Filled, services: Services, calendar: Calendar) -> Settled:
    settings = services.admin(filled.database)
    writer = make_writer(settings.influx)
    try:
        inputs = SettleInputs(calendar, OrderBook(), settings.site)
        return settle(filled.client, writer, inputs, RetryPolicy(), start_ms=START, end_ms=END)
    finally:
        writer.close()


def _board_calendar_time(filled: Filled, binding: q.Binding) -> dict[str, dict[str, int]]:
    rows = filled.client.rows(q.bind(q.calendar_time().influxql, binding))
    return {r[Tag.PLANNED]: {s.value: int(r[state_field(s)]) for s in STATE_ORDER} for r in rows}


@pytest.mark.parametrize(
    ("start_min", "end_min", "resolution"),
    [(0, 720, q.HOUR), (0, 720, q.MINUTE), (17, 697, q.MINUTE), (125, 510, q.MINUTE), (120, 600, q.HOUR)],
)
def test_the_boards_settled_planned_time_time_outside_shifts_and_oee_equal_the_ledger(
    services: Services, filled: Filled, start_min: int, end_min: int, resolution: str
) -> None:
    """Settled as `ftel settle` does, the boards' OEE over planned time and their machine time inside planned time
    and outside shifts equal the ledger, at either resolution of the boards; a calendar change settled again
    (all time planned, then the two 12-hour shifts back) leaves no trace."""
    _settle(filled, services, default_calendar())
    done = _settle(filled, services, filled.calendar)
    assert (done.start_ms, done.end_ms) == (START, END)
    start, end = START + start_min * WINDOW_MS, START + end_min * WINDOW_MS
    binding = q.Binding(start, end, resolution=resolution)
    rows = _in(filled.ledger, start, end)
    inside: Counter[str] = Counter()
    outside: Counter[str] = Counter()
    for r in rows:
        inside.update(r.planned_state_ms)
        outside.update({s: r.state_ms[s] - r.planned_state_ms[s] for s in r.state_ms})
    measured = _board_calendar_time(filled, binding)
    assert measured[PLANNED_INSIDE] == {s.value: inside[s.value] for s in STATE_ORDER}
    assert measured[PLANNED_OUTSIDE] == {s.value: outside[s.value] for s in STATE_ORDER}
    assert sum(measured[PLANNED_INSIDE].values()) == filled.calendar.planned_ms(start, end) * 28
    assert sum(measured[PLANNED_OUTSIDE].values()) > 0
    for machine_type in MachineType:
        got = filled.client.rows(q.bind(q.oee(machine_type, over="planned").influxql, binding))
        expected = _ledger_oee(rows, machine_type)
        assert {k: got[0][k] for k in expected} == pytest.approx(expected, rel=1e-9), machine_type


def test_the_boards_day_off_is_all_outside_shifts_and_has_no_oee(services: Services, filled: Filled) -> None:
    _settle(filled, services, filled.calendar)
    binding = q.Binding(END - 2 * 3_600_000, END, resolution=q.HOUR)  # Sunday 08:00 to 10:00: the day off
    measured = _board_calendar_time(filled, binding)
    assert sum(measured[PLANNED_INSIDE].values()) == 0
    assert sum(measured[PLANNED_OUTSIDE].values()) == 2 * 3_600_000 * 28
    rows = filled.client.rows(q.bind(q.oee(MachineType.KNITTING, over="planned").influxql, binding))
    assert rows == []  # no OEE, not InfluxQL's 0 for 0 / 0


def test_ftel_settle_from_to_settles_a_range_again_with_the_settings_calendar(
    services: Services,
    filled: Filled,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _settle(filled, services, default_calendar())  # as if the calendar had just been corrected
    calendar_file = tmp_path / "calendar.yaml"
    calendar_file.write_text(TWO_TWELVES)
    for name, value in ftel_env(services.settings(filled.database)).items():
        if name.startswith("FTEL_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("FTEL_CALENDAR", str(calendar_file))
    assert main(["settle", "--from", "2026-11-14T22:00", "--to", "2026-11-15T10:00"]) == 0
    said = capsys.readouterr().out
    assert f"over {START} .. {END} ms" in said
    measured = _board_calendar_time(filled, q.Binding(START, END, resolution=q.HOUR))
    inside: Counter[str] = Counter()
    for r in filled.ledger:
        inside.update(r.planned_state_ms)
    assert measured[PLANNED_INSIDE] == {s.value: inside[s.value] for s in STATE_ORDER}
    assert main(["settle", "--from", "2026-11-14T22:00"]) == 2
    assert "give both --from and --to" in capsys.readouterr().err
