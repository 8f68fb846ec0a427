"""Ground truth: per machine and fixed window, exact milliseconds in each state, stops and downtime by reason,
units and defects, straight from the simulated segments (independently of the gateway's own accounting).

Ledger format (JSON Lines, one object per machine and window, documented in docs/ledger.md):
{"site", "workshop", "machine_type", "machine_id", "window_start", "window_ms",
 "state_ms": {STATE: ms}, "down_ms_by_reason": {reason: ms}, "stops_by_reason": {reason: n},
 "units": n, "defects": n,
 "planned_ms": ms, "planned_state_ms": {STATE: ms}, "micro_stops_by_reason": {reason: n},
 "micro_stop_ms_by_reason": {reason: ms},
 "job_units": {job: n}, "job_defects": {job: n}, "job_run_ms": {job: ms},
 "unexplained_stops": n, "unexplained_ms": ms, "classified_stops_by_reason": {reason: n},
 "classified_ms_by_reason": {reason: ms}, "operator_down_ms_by_reason": {reason: ms},
 "operator_stops_by_reason": {reason: n}}

``planned_ms`` is the window's planned production time (the calendar's; all of it without a calendar) and
``planned_state_ms`` the state times inside it, so time outside shifts is ``state_ms - planned_state_ms``.
A micro-stop is a DOWN stretch shorter than its machine type's threshold (settings: micro_stop_s); it is
counted, with its whole duration, in the window where it ends: that is when anyone (the gateway too) knows it
was short.

``job_*`` are the pieces, defects and RUNNING time of the window per job ("<style>/<order>", job_key), split at
the exact moment of each job change (simulators/jobs.py): a change mid-window cuts the window there.

With simulated operators (simulators/operators.py), the stops without a machine reason that ended in the window
(each whole, as micro-stops are): still ``unexplained_*``, or classified by the reason standing at the end of the
period (``classified_*_by_reason``: a correction replaces the first choice); and ``operator_down_ms_by_reason``,
the window's DOWN time of classified ``unknown_fault`` stops under the operator's reason (the Pareto moves it),
and ``operator_stops_by_reason`` those stops, counted where they began (as ``stops_by_reason`` counts them).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ftel.contract.states import STATE_ORDER, UNKNOWN_FAULT, MachineState
from ftel.plant.calendar import Calendar
from ftel.plant.layout import Plant
from ftel.plant.orders import Job, JobChange, OrderBook
from ftel.plant.reasons import MachineRef, latest_choices
from ftel.plant.stops import micro_stop_limits_ms
from simulators.jobs import simulated_job_changes
from simulators.machine import MachineModel, Segment, count_defects, plant_models
from simulators.operators import OperatorPlay, segment_stop, simulated_choices
from simulators.profiles import PROFILES


@dataclass(slots=True)
class LedgerRow:
    site: str
    workshop: str
    machine_type: str
    machine_id: str
    window_start: int
    window_ms: int
    state_ms: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in STATE_ORDER})
    down_ms_by_reason: dict[str, int] = field(default_factory=dict)
    stops_by_reason: dict[str, int] = field(default_factory=dict)
    units: int = 0
    defects: int = 0
    planned_ms: int = 0
    planned_state_ms: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in STATE_ORDER})
    micro_stops_by_reason: dict[str, int] = field(default_factory=dict)
    micro_stop_ms_by_reason: dict[str, int] = field(default_factory=dict)
    job_units: dict[str, int] = field(default_factory=dict)
    job_defects: dict[str, int] = field(default_factory=dict)
    job_run_ms: dict[str, int] = field(default_factory=dict)
    unexplained_stops: int = 0
    unexplained_ms: int = 0
    classified_stops_by_reason: dict[str, int] = field(default_factory=dict)
    classified_ms_by_reason: dict[str, int] = field(default_factory=dict)
    operator_down_ms_by_reason: dict[str, int] = field(default_factory=dict)
    operator_stops_by_reason: dict[str, int] = field(default_factory=dict)


def job_key(job: Job) -> str:
    return f"{job.style}/{job.order}"


def _planned(calendar: Calendar | None, start_ms: int, end_ms: int) -> int:
    return end_ms - start_ms if calendar is None else calendar.planned_ms(start_ms, end_ms)


def machine_ledger(
    model: MachineModel,
    *,
    site: str,
    workshop: str,
    end_ms: int,
    window_ms: int,
    calendar: Calendar | None = None,
    micro_stop_ms: int = 0,
    job_changes: Sequence[JobChange] = (),
    operators: OperatorPlay | None = None,
) -> Iterator[LedgerRow]:
    """``calendar``: planned time (None: all of it); ``micro_stop_ms``: a DOWN stretch shorter than this is a
    micro-stop (0: none); ``job_changes``: the machine's, in time order (only their moments and jobs are read)."""
    change_times = [c.at_ms for c in job_changes]
    machine = MachineRef(site, workshop, model.spec.type, model.spec.id)
    standing = (
        {
            c.stop_start_ms: c.reason
            for c in latest_choices(simulated_choices(model, machine, operators, end_ms=end_ms)).values()
        }
        if operators is not None
        else {}
    )
    start = model.start_ms
    first_window = start - start % window_ms
    rows: dict[int, LedgerRow] = {}

    def row(window_start: int) -> LedgerRow:
        if window_start not in rows:
            rows[window_start] = LedgerRow(
                site,
                workshop,
                model.spec.type.value,
                model.spec.id,
                window_start,
                window_ms,
                planned_ms=_planned(calendar, window_start, window_start + window_ms),
            )
        return rows[window_start]

    for segment in model.segments():
        if segment.start_ms >= end_ms:
            break
        seg_end = min(segment.end_ms, end_ms)
        # A machine first seen DOWN (at the start) is not a stop: the gateway did not see it stop either.
        if segment.state is MachineState.DOWN and segment.reason and segment.start_ms > start:
            r = row(segment.start_ms - segment.start_ms % window_ms)
            r.stops_by_reason[segment.reason] = r.stops_by_reason.get(segment.reason, 0) + 1
        length = segment.end_ms - segment.start_ms
        if segment.state is MachineState.DOWN and segment.reason and segment.end_ms < end_ms and length < micro_stop_ms:
            r = row(segment.end_ms - segment.end_ms % window_ms)
            r.micro_stops_by_reason[segment.reason] = r.micro_stops_by_reason.get(segment.reason, 0) + 1
            r.micro_stop_ms_by_reason[segment.reason] = r.micro_stop_ms_by_reason.get(segment.reason, 0) + length
        if operators is not None:
            _count_unexplained(row, segment, machine, operators, standing, end_ms=end_ms, window_ms=window_ms)
        moved_to = standing.get(segment.start_ms) if segment.reason == UNKNOWN_FAULT else None
        if moved_to is not None and segment.start_ms > start:
            r = row(segment.start_ms - segment.start_ms % window_ms)
            r.operator_stops_by_reason[moved_to] = r.operator_stops_by_reason.get(moved_to, 0) + 1
        cursor = segment.start_ms
        while cursor < seg_end:
            window_start = cursor - cursor % window_ms
            piece_end = min(seg_end, window_start + window_ms)
            r = row(window_start)
            r.state_ms[segment.state.value] += piece_end - cursor
            r.planned_state_ms[segment.state.value] += _planned(calendar, cursor, piece_end)
            if segment.state is MachineState.DOWN and segment.reason:
                r.down_ms_by_reason[segment.reason] = r.down_ms_by_reason.get(segment.reason, 0) + piece_end - cursor
                if moved_to is not None:
                    moved = r.operator_down_ms_by_reason
                    moved[moved_to] = moved.get(moved_to, 0) + piece_end - cursor
            if segment.state is MachineState.RUNNING:
                before = model.units_at(segment, cursor)
                after = model.units_at(segment, piece_end)
                r.units += after - before
                r.defects += count_defects(model.seed, before, after, PROFILES[model.spec.type].defect_rate_bp)
                _count_jobs(
                    r,
                    model,
                    segment,
                    start_ms=cursor,
                    end_ms=piece_end,
                    changes=job_changes,
                    change_times=change_times,
                )
            cursor = piece_end
    window = first_window
    while window < end_ms:
        yield row(window)
        window += window_ms


def _count_unexplained(
    row: Callable[[int], LedgerRow],
    segment: Segment,
    machine: MachineRef,
    operators: OperatorPlay,
    standing: Mapping[int, str],
    *,
    end_ms: int,
    window_ms: int,
) -> None:
    """A finished stop without a machine reason, whole, in the window where it ended."""
    stop = segment_stop(machine, segment, end_ms=end_ms)
    if stop is None or stop.end_ms is None:
        return
    ms = operators.rule.ms(stop, stop.end_ms)
    if ms is None:
        return
    r = row(stop.end_ms - stop.end_ms % window_ms)
    code = standing.get(stop.start_ms)
    if code is None:
        r.unexplained_stops += 1
        r.unexplained_ms += ms
    else:
        r.classified_stops_by_reason[code] = r.classified_stops_by_reason.get(code, 0) + 1
        r.classified_ms_by_reason[code] = r.classified_ms_by_reason.get(code, 0) + ms


def _count_jobs(
    r: LedgerRow,
    model: MachineModel,
    segment: Segment,
    *,
    start_ms: int,
    end_ms: int,
    changes: Sequence[JobChange],
    change_times: Sequence[int],
) -> None:
    """A running piece's units, defects and time, cut at the job changes inside it, to each job."""
    index = bisect.bisect_right(change_times, start_ms)
    cut = start_ms
    while cut < end_ms:
        until = min(end_ms, change_times[index]) if index < len(change_times) else end_ms
        if index > 0:
            key = job_key(changes[index - 1].job)
            before, after = model.units_at(segment, cut), model.units_at(segment, until)
            rate = PROFILES[model.spec.type].defect_rate_bp
            r.job_units[key] = r.job_units.get(key, 0) + after - before
            r.job_defects[key] = r.job_defects.get(key, 0) + count_defects(model.seed, before, after, rate)
            r.job_run_ms[key] = r.job_run_ms.get(key, 0) + until - cut
        cut = until
        index += 1


def plant_ledger(
    plant: Plant,
    *,
    start_ms: int,
    end_ms: int,
    window_ms: int,
    workshop: str | None = None,
    calendar: Calendar | None = None,
    micro_stop_s: Mapping[str, float] | None = None,
    orders: OrderBook | None = None,
    operators: OperatorPlay | None = None,
) -> Iterator[LedgerRow]:
    """Every machine's windows; with a calendar, the machines work only in its planned time (as the simulation
    given the same calendar does); with ``orders``, knitting machines change jobs (simulators/jobs.py)."""
    limits = micro_stop_limits_ms(micro_stop_s)
    for workshop_id, model in plant_models(plant, start_ms=start_ms, workshop=workshop, calendar=calendar):
        yield from machine_ledger(
            model,
            site=plant.site,
            workshop=workshop_id,
            end_ms=end_ms,
            window_ms=window_ms,
            calendar=calendar,
            micro_stop_ms=limits.get(model.spec.type.value, 0),
            job_changes=list(simulated_job_changes(model, orders, end_ms=end_ms, window_ms=window_ms))
            if orders
            else (),
            operators=operators,
        )


def write_ledger(rows: Iterable[LedgerRow], path: Path) -> int:
    count = 0
    with path.open("w") as out:
        for r in rows:
            out.write(json.dumps(asdict(r), sort_keys=True) + "\n")
            count += 1
    return count


def read_ledger(path: Path) -> list[LedgerRow]:
    return [LedgerRow(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
