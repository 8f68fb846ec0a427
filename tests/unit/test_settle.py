"""Settling the boards' figures (dashboards/settle.py and its parts), pure: planned time split at the calendar,
downtime moved to operators' reasons, idempotent rewrites, the periodic loop."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from dashboards import queries as q
from dashboards.calendar_rollup import planned_points
from dashboards.reasons_rollup import classified_points
from dashboards.settle import Settled, recent_range, settle_every, whole_hours
from ftel.contract.states import UNKNOWN_FAULT, MachineState, MachineType
from ftel.plant.reasons import MachineRef, Stop
from ftel.storage.errors import StorageError
from ftel.storage.lineproto import Point
from ftel.storage.schema import PLANNED_INSIDE, PLANNED_OUTSIDE, Field, Tag, state_field

HOUR = q.MS_PER_HOUR
MINUTE = q.MS_PER_MINUTE
SERIES = {Tag.SITE: "qinghe", Tag.WORKSHOP: "knit", Tag.MACHINE_TYPE: "knitting"}
RUNNING = state_field(MachineState.RUNNING)
MACHINE = MachineRef("qinghe", "knit", MachineType.KNITTING, "KNIT-001")


def _state_row(at: int, running: int) -> dict[str, Any]:
    fields = dict.fromkeys(q.KIND_FIELDS["planned"], 0)
    return {**SERIES, "time": at, **fields, RUNNING: running, Field.OBSERVED_MS: running}


def _by(points: list[Point], window_ms: int) -> dict[tuple[int, str], Mapping[str, object]]:
    tag = Tag.PLANNED if Tag.PLANNED in points[0].tags else Tag.REASON
    wanted = "1m" if window_ms == MINUTE else "1h"
    return {(p.time_ms, p.tags[tag]): p.fields for p in points if p.tags[Tag.RESOLUTION] == wanted}


def test_a_minute_is_inside_or_outside_planned_time_and_both_sides_are_always_written() -> None:
    rows = [_state_row(0, 60_000), _state_row(MINUTE, 50_000), _state_row(2 * MINUTE, 40_000)]
    points = planned_points(rows, [(MINUTE, 2 * MINUTE)])
    minutes = _by(points, MINUTE)
    assert minutes[(0, PLANNED_OUTSIDE)][RUNNING] == 60_000
    assert minutes[(0, PLANNED_INSIDE)][RUNNING] == 0
    assert minutes[(MINUTE, PLANNED_INSIDE)][RUNNING] == 50_000
    assert minutes[(MINUTE, PLANNED_OUTSIDE)][RUNNING] == 0
    hours = _by(points, HOUR)
    assert hours[(0, PLANNED_INSIDE)][RUNNING] == 50_000
    assert hours[(0, PLANNED_OUTSIDE)][RUNNING] == 100_000


def test_a_calendar_change_settled_again_overwrites_every_point_it_wrote_before() -> None:
    rows = [_state_row(at * MINUTE, 60_000) for at in range(5)]
    before = {(p.time_ms, tuple(sorted(p.tags.items()))) for p in planned_points(rows, [])}
    after = planned_points(rows, [(0, 5 * MINUTE)])
    assert {(p.time_ms, tuple(sorted(p.tags.items()))) for p in after} == before
    assert _by(after, HOUR)[(0, PLANNED_OUTSIDE)][RUNNING] == 0


def _down_row(at: int, reason: str, down_ms: int, stops: int) -> dict[str, Any]:
    return {**SERIES, Tag.REASON: reason, "time": at, Field.DOWN_MS: down_ms, Field.STOPS: stops}


def test_a_classified_stops_time_moves_to_its_reason_per_window_and_its_count_where_it_began() -> None:
    stop = Stop(MACHINE, MachineState.DOWN, UNKNOWN_FAULT, 30_000, MINUTE + 45_000)
    rows = [_down_row(0, UNKNOWN_FAULT, 30_000, 1), _down_row(MINUTE, UNKNOWN_FAULT, 45_000, 0)]
    points = classified_points(rows, [stop], {stop.key: "no_yarn"}, ["old_code"], start_ms=0, end_ms=HOUR)
    minutes = _by(points, MINUTE)
    assert minutes[(0, "no_yarn")][Field.DOWN_MS] == 30_000
    assert minutes[(0, "no_yarn")][Field.STOPS] == 1
    assert minutes[(MINUTE, "no_yarn")][Field.DOWN_MS] == 45_000
    assert minutes[(0, UNKNOWN_FAULT)][Field.DOWN_MS] == 0
    assert minutes[(0, UNKNOWN_FAULT)][Field.STOPS] == 0
    # A reason some operator chose before (a correction) is written as zero where the stop falls.
    assert minutes[(0, "old_code")] == {Field.DOWN_MS: 0, Field.STOPS: 0, Field.UNEXPLAINED_MS: 0}
    hours = _by(points, HOUR)
    assert hours[(0, "no_yarn")][Field.DOWN_MS] == 75_000


def test_only_the_part_of_a_stop_inside_the_range_moves_and_a_stop_begun_before_keeps_its_count() -> None:
    stop = Stop(MACHINE, MachineState.DOWN, UNKNOWN_FAULT, HOUR - 20_000, HOUR + 10_000)
    rows = [_down_row(HOUR, UNKNOWN_FAULT, 10_000, 0)]
    points = classified_points(rows, [stop], {stop.key: "no_yarn"}, [], start_ms=HOUR, end_ms=2 * HOUR)
    minutes = _by(points, MINUTE)
    assert minutes[(HOUR, "no_yarn")][Field.DOWN_MS] == 10_000
    assert minutes[(HOUR, "no_yarn")][Field.STOPS] == 0
    assert {t for t, _ in minutes} == {HOUR}


def test_the_unexplained_time_is_what_stays_under_unknown_fault_and_a_controller_reason_never_moves() -> None:
    named = Stop(MACHINE, MachineState.DOWN, "yarn_break", 0, 20_000)
    rows = [_down_row(0, UNKNOWN_FAULT, 5_000, 1), _down_row(0, "yarn_break", 20_000, 1)]
    points = classified_points(rows, [named], {named.key: "no_yarn"}, [], start_ms=0, end_ms=HOUR)
    minutes = _by(points, MINUTE)
    assert minutes[(0, UNKNOWN_FAULT)][Field.UNEXPLAINED_MS] == 5_000
    assert minutes[(0, "yarn_break")] == {Field.DOWN_MS: 20_000, Field.STOPS: 1, Field.UNEXPLAINED_MS: 0}
    assert (0, "no_yarn") not in minutes


def test_ranges_settle_over_whole_hours_and_the_recent_range_ends_after_the_current_minute() -> None:
    assert whole_hours(HOUR + 5, 3 * HOUR + 1) == (HOUR, 4 * HOUR)
    assert whole_hours(HOUR, 3 * HOUR) == (HOUR, 3 * HOUR)
    assert recent_range(10 * HOUR + 90_000, 8.0) == (2 * HOUR + 2 * MINUTE, 10 * HOUR + 2 * MINUTE)


def test_the_periodic_settle_goes_on_after_a_failure_and_stops_when_asked() -> None:
    stop = threading.Event()
    calls: list[tuple[int, int]] = []

    def step(start_ms: int, end_ms: int) -> Settled:
        calls.append((start_ms, end_ms))
        if len(calls) == 1:
            raise StorageError("InfluxDB away")
        if len(calls) == 3:
            stop.set()
        return Settled(start_ms, end_ms, 0, 0, 0)

    settle_every(step, every_s=0.0, lookback_h=1.0, stop=stop, clock=lambda: 7200.0)
    assert calls == [(3_600_000 + MINUTE, 7_200_000 + MINUTE)] * 3
