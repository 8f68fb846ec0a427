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
from dashboards.settle import Settled, SettleInputs, settle
from dashboards.stops_data import read_stops
from ftel.contract.states import UNKNOWN_FAULT
from ftel.plant.calendar import Calendar
from ftel.plant.layout import default_plant
from ftel.plant.orders import OrderBook
from ftel.plant.reasons import Choice, ReasonBook, ReasonGroup, UnexplainedRule
from ftel.plant.stops import micro_stop_limits_ms
from ftel.storage.lineproto import encode_batch
from ftel.storage.points import reason_points
from ftel.storage.query import InfluxQuery
from ftel.storage.schema import Field, Measurement, Tag
from ftel.storage.writer import RetryPolicy, make_writer
from simulators.backfill import backfill
from simulators.ledger import LedgerRow, plant_ledger
from simulators.operators import OperatorPlay
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
    database: str
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
    return Filled(InfluxQuery(settings.influx), database, calendar, ledger)


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
    down, stops = _ledger_pareto(rows)
    assert {d.reason: round(d.minutes * q.MS_PER_MINUTE) for d in data.downtime} == down
    assert {d.reason: d.stops for d in data.downtime} == stops


def _ledger_pareto(rows: list[LedgerRow]) -> tuple[dict[str, int], dict[str, int]]:
    """Per reason with downtime, its DOWN ms and stops begun, an operator's reason taking a classified
    unknown_fault stop's."""
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
    return {c: ms for c, ms in down.items() if ms}, {c: stops[c] for c, ms in down.items() if ms}


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


def _settle(services: Services, filled: Filled, start_ms: int, end_ms: int) -> Settled:
    settings = services.admin(filled.database)
    writer = make_writer(settings.influx)
    try:
        inputs = SettleInputs(filled.calendar, OrderBook(), settings.site)
        return settle(filled.client, writer, inputs, RetryPolicy(), start_ms=start_ms, end_ms=end_ms)
    finally:
        writer.close()


def _board_pareto(filled: Filled, binding: q.Binding) -> tuple[dict[str, int], dict[str, int]]:
    rows = filled.client.rows(q.bind(q.downtime_by_reason(classified=True).influxql, binding))
    down = {r[Tag.REASON]: round(r["minutes"] * q.MS_PER_MINUTE) for r in rows if r["minutes"]}
    return down, {r[Tag.REASON]: r["stops"] for r in rows if r["minutes"]}


@pytest.mark.parametrize(
    ("start_ms", "end_ms", "resolution"),
    [
        (START, END, q.HOUR),
        (START, END, q.MINUTE),
        (START + 95 * 60_000, START + 7 * 3_600_000 + 13 * 60_000, q.MINUTE),
    ],
    ids=["whole-1h", "whole-1m", "part-hours-1m"],
)
def test_the_boards_pareto_of_classified_reasons_and_unexplained_share_equal_the_ledger_and_the_report(
    services: Services, filled: Filled, start_ms: int, end_ms: int, resolution: str
) -> None:
    """Settled as `ftel settle` does (twice, and an inner range again: idempotent), the overview's Pareto by
    classified reason and its share of downtime nobody explained equal the ledger and the report."""
    _settle(services, filled, START, END)
    _settle(services, filled, START + 3 * 3_600_000, START + 5 * 3_600_000 + 7 * 60_000)
    binding = q.Binding(start_ms, end_ms, resolution=resolution)
    down, stops = _ledger_pareto(_rows(filled, start_ms, end_ms))
    assert _board_pareto(filled, binding) == (down, stops)
    report = collect(filled.client, q.Binding(start_ms, end_ms), calendar=filled.calendar)
    assert {d.reason: round(d.minutes * q.MS_PER_MINUTE) for d in report.downtime} == down
    share = filled.client.rows(q.bind(q.unexplained_downtime_share().influxql, binding))
    assert share[0]["share"] == pytest.approx(down[UNKNOWN_FAULT] / sum(down.values()), rel=1e-12)
    assert 0 < share[0]["share"] < 1


def test_a_correction_settled_again_moves_the_stops_time_to_the_new_reason_only(
    services: Services, filled: Filled
) -> None:
    """A correction overwrites the stop's standing reason; settling again leaves nothing under the old one."""
    _settle(services, filled, START, END)
    binding = q.Binding(START, END, resolution=q.HOUR)
    before, _ = _board_pareto(filled, binding)
    row = filled.client.rows(
        f'SELECT * FROM "{Measurement.STOP_REASON}" WHERE "{Field.STOP_STATE}" = \'DOWN\' LIMIT 1'
    )[0]
    stop = next(s for s in read_stops(filled.client, binding) if s.key == (row[Tag.MACHINE_ID], int(row["time"])))
    assert stop.end_ms is not None
    old, new = row[Field.REASON], "settle_test_reason"
    correction = Choice(stop.machine, stop.start_ms, stop.state, new, ReasonGroup.UNPLANNED, "test", END)
    original = Choice(
        stop.machine, stop.start_ms, stop.state, old, ReasonGroup(row[Field.REASON_GROUP]), "test", END + 1
    )
    writer = make_writer(services.admin(filled.database).influx)
    try:
        writer.write(encode_batch(reason_points(correction)))
        _settle(services, filled, START, END)
        after, _ = _board_pareto(filled, binding)
        moved = min(stop.end_ms, END) - max(stop.start_ms, START)
        assert after[new] == moved
        assert after.get(old, 0) == before[old] - moved
        assert sum(after.values()) == sum(before.values())
    finally:
        writer.write(encode_batch(reason_points(original)))
        writer.close()
    _settle(services, filled, START, END)
    assert _board_pareto(filled, binding)[0] == before
