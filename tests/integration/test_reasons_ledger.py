"""Operators' reasons against the ledger, through a real InfluxDB: the default plant on two 12-hour shifts with
breaks, simulated through the gateway core for 12 hours, with simulated operators who classify some unexplained
stops after a delay and correct a few, written as the operator page writes them. The report's unexplained and
classified stops (count and time, per workshop and reason) and its downtime Pareto by classified reason equal the
ledger, over the whole period and over a range of part hours."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dashboards import queries as q
from dashboards.report_data import collect
from ftel.contract.states import UNKNOWN_FAULT
from ftel.plant.calendar import Calendar
from ftel.plant.reasons import ReasonBook, UnexplainedRule
from ftel.plant.stops import micro_stop_limits_ms
from ftel.storage.query import InfluxQuery
from ftel.storage.schema import Measurement, Tag
from simulators.backfill import backfill
from simulators.ledger import LedgerRow, plant_ledger
from simulators.operators import OperatorPlay
from simulators.plant import default_plant
from tests.calendars import two_twelves
from tests.support import Services, unique

pytestmark = pytest.mark.integration

WINDOW_MS = 60_000
IDLE_LIMIT_S = 600.0
START = int(datetime(2026, 11, 16, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
END = START + 12 * 3_600_000


@dataclass(frozen=True)
class Filled:
    client: InfluxQuery
    calendar: Calendar
    ledger: list[LedgerRow]


@pytest.fixture(scope="module")
def filled(services: Services) -> Filled:
    calendar = two_twelves()
    plant = default_plant()
    database = unique("reasons")
    settings = services.admin(database)
    play = OperatorPlay(ReasonBook(), UnexplainedRule(int(IDLE_LIMIT_S * 1000), calendar, micro_stop_limits_ms()))
    backfill(
        plant,
        settings.influx,
        start_ms=START,
        end_ms=END,
        window_ms=WINDOW_MS,
        telemetry_interval_ms=600_000,
        calendar=calendar,
        operators=play,
    )
    ledger = list(
        plant_ledger(plant, start_ms=START, end_ms=END, window_ms=WINDOW_MS, calendar=calendar, operators=play)
    )
    return Filled(InfluxQuery(settings.influx), calendar, ledger)


def _rows(filled: Filled, start_ms: int, end_ms: int) -> list[LedgerRow]:
    return [r for r in filled.ledger if start_ms <= r.window_start < end_ms]


@pytest.mark.parametrize(
    ("start_ms", "end_ms"),
    [(START, END), (START + 95 * 60_000, START + 7 * 3_600_000 + 13 * 60_000)],
    ids=["whole", "part-hours"],
)
def test_unexplained_and_classified_stops_and_the_pareto_equal_the_ledger(
    filled: Filled, start_ms: int, end_ms: int
) -> None:
    data = collect(
        filled.client, q.Binding(start_ms, end_ms), calendar=filled.calendar, idle_unexplained_s=IDLE_LIMIT_S
    )
    assert data.stops is not None
    rows = _rows(filled, start_ms, end_ms)
    for workshop in {r.workshop for r in rows}:
        mine = [r for r in rows if r.workshop == workshop]
        figures = data.stops.by_workshop.get(workshop)
        unexplained = (sum(r.unexplained_stops for r in mine), sum(r.unexplained_ms for r in mine))
        classified_n: Counter[str] = Counter()
        classified_ms: Counter[str] = Counter()
        for r in mine:
            classified_n.update(r.classified_stops_by_reason)
            classified_ms.update(r.classified_ms_by_reason)
        if figures is None:
            assert unexplained == (0, 0)
            assert not classified_n
            continue
        assert (figures.unexplained.count, figures.unexplained.ms) == unexplained, workshop
        assert {c: (t.count, t.ms) for c, t in figures.by_reason.items()} == {
            c: (classified_n[c], classified_ms[c]) for c in classified_n
        }, workshop
        assert (figures.classified.count, figures.classified.ms) == (
            sum(classified_n.values()),
            sum(classified_ms.values()),
        )
    down: Counter[str] = Counter()
    stops: Counter[str] = Counter()
    for r in rows:
        down.update(r.down_ms_by_reason)
        stops.update(r.stops_by_reason)
        for code, ms in r.operator_down_ms_by_reason.items():
            down[UNKNOWN_FAULT] -= ms
            down[code] += ms
        for code, n in r.operator_stops_by_reason.items():
            stops[UNKNOWN_FAULT] -= n
            stops[code] += n
    assert {d.reason: round(d.minutes * q.MS_PER_MINUTE) for d in data.downtime} == {
        reason: ms for reason, ms in down.items() if ms
    }
    assert {d.reason: d.stops for d in data.downtime} == {reason: stops[reason] for reason, ms in down.items() if ms}


def test_the_simulated_operators_left_stops_of_each_kind_and_corrected_some(filled: Filled) -> None:
    """The ground truth is not empty: stops unexplained, classified, DOWN unknown_fault moved, corrections."""
    unexplained = sum(r.unexplained_stops for r in filled.ledger)
    classified = sum(sum(r.classified_stops_by_reason.values()) for r in filled.ledger)
    moved = sum(sum(r.operator_down_ms_by_reason.values()) for r in filled.ledger)
    assert unexplained > 0
    assert classified > 0
    assert moved > 0
    standing = filled.client.rows(f'SELECT count("reason") FROM "{Measurement.STOP_REASON}"')
    log = filled.client.rows(f'SELECT count("reason") FROM "{Measurement.STOP_REASON_LOG}"')
    assert standing[0]["count"] == classified  # every classified stop has one standing reason
    assert log[0]["count"] > classified  # and some were corrected


def test_the_boards_stops_without_a_machine_reason_and_classified_equal_the_ledger(filled: Filled) -> None:
    """The overview's panels, over observed time: the ledger judged without the calendar (every IDLE whole)."""
    observed = OperatorPlay(ReasonBook(), UnexplainedRule(int(IDLE_LIMIT_S * 1000), None, micro_stop_limits_ms()))
    ledger = plant_ledger(
        default_plant(), start_ms=START, end_ms=END, window_ms=WINDOW_MS, calendar=filled.calendar, operators=observed
    )
    expected: dict[str, tuple[int, int]] = {}
    for r in ledger:
        n, ms = expected.get(r.workshop, (0, 0))
        n += r.unexplained_stops + sum(r.classified_stops_by_reason.values())
        ms += r.unexplained_ms + sum(r.classified_ms_by_reason.values())
        expected[r.workshop] = (n, ms)
    binding = q.Binding(START, END)
    query = q.without_machine_reason(int(IDLE_LIMIT_S * 1000), micro_stop_limits_ms(), Tag.WORKSHOP)
    measured = {r["workshop"]: (r["stops"], r["ms"]) for r in filled.client.rows(q.bind(query.influxql, binding))}
    assert measured == {w: t for w, t in expected.items() if t[0]}
    classified = filled.client.rows(q.bind(q.classified_stops().influxql, binding))
    assert classified[0]["stops"] == sum(sum(r.classified_stops_by_reason.values()) for r in filled.ledger)
