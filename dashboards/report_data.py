"""What the shift report shows, read from InfluxDB through the same queries as the boards.

Where it reads (``report_readings``, docs/boards.md): workshop questions from the workshop roll-ups, the whole
hours of the period at 1h and the minutes at its edges at 1m; worst machines from the machine hours plus each
machine's own windows at the edges, added up here (InfluxDB keeps two measurements apart); a report narrowed
to machines from their own windows. State now and timelines from the raw state changes.

Planned time comes from the plant calendar, at read time (docs/boards.md): the period's planned spans are read as
slices of their own (calendar boundaries fall on whole minutes, so every one-minute window is wholly inside or
outside planned time), OEE is computed over them, and time outside shifts is the period's time less theirs. A
calendar change therefore applies to past periods too: the stored windows do not depend on it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dashboards import queries as q
from dashboards.orders_data import OrdersData, collect_orders
from dashboards.stops_data import StopsData, collect_stops
from ftel.contract import limits
from ftel.contract.states import STATE_ORDER, MachineState, MachineType
from ftel.plant.calendar import Calendar, default_calendar
from ftel.plant.orders import OrderBook
from ftel.plant.reasons import UnexplainedRule
from ftel.plant.stops import micro_stop_limits_ms
from ftel.settings import DEFAULT_MICRO_STOP_S, OperatorSettings
from ftel.storage.query import InfluxQuery
from ftel.storage.schema import Field, Tag, machines_field, state_field

# A timeline of more machines than this is a chart nobody reads: past it, the report draws the machines with
# the most downtime, so it stays one page (and a few queries) for a county's fleet.
TIMELINE_MACHINES = 50


@dataclass(frozen=True, slots=True)
class Oee:
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None


@dataclass(frozen=True, slots=True)
class Downtime:
    reason: str
    minutes: float
    stops: int


@dataclass(frozen=True, slots=True)
class MicroStops:
    """Stops shorter than ``limit_s`` (the machine type's micro-stop threshold) that ended in the period."""

    workshop: str
    machine_type: str
    limit_s: float
    stops: int
    ms: int


@dataclass(frozen=True, slots=True)
class PlannedTime:
    """Machine time of the period (observed, per state) inside the calendar's planned time and outside it.
    ``calendar_ms`` is the planned time of the period on the calendar (one machine's worth)."""

    calendar_ms: int
    inside: dict[MachineState, int]
    outside: dict[MachineState, int]


@dataclass(frozen=True, slots=True)
class WorstMachine:
    machine_id: str
    workshop: str
    down_ms: int


@dataclass(frozen=True, slots=True)
class Segment:
    start_ms: int
    end_ms: int
    state: MachineState


@dataclass(frozen=True, slots=True)
class ReportData:
    start_ms: int
    end_ms: int
    utilisation: float | None
    utilisation_by_workshop: dict[str, float]
    utilisation_by_type: dict[str, float]
    downtime: list[Downtime]
    worst: list[WorstMachine]
    oee: dict[MachineType, Oee]
    machines_by_state: dict[str, dict[MachineState, int]]
    # workshop -> machine -> segments covering the period
    timelines: dict[str, dict[str, list[Segment]]] = field(default_factory=dict)
    # True when the timelines show only the machines with most downtime (too many machines selected)
    timelines_worst_only: bool = False
    planned: PlannedTime | None = None
    micro_stops: list[MicroStops] = field(default_factory=list)
    orders: OrdersData | None = None
    stops: StopsData | None = None


@dataclass(frozen=True, slots=True)
class ReportReadings:
    """Where the report reads: workshop questions (one statement each), and per-machine questions, one
    reading per slice of the period (their figures are added up per machine)."""

    workshops: q.Reading
    machines: tuple[q.Reading, ...]


def report_readings(binding: q.Binding, *, now_ms: int | None = None) -> ReportReadings:
    """Workshop roll-ups and machine hours for the period's whole hours, 1m roll-ups and machines' own windows
    for the minutes at its edges; a selection of machines reads their own windows (roll-ups hold no machine).
    An hour that ended less than the gateways' spread of machine hours (and a phase) before ``now_ms`` is read
    from its minutes: a report right after a shift's end is whole."""
    if (binding.variables or {}).get(q.MACHINE):
        period = q.Slice(q.between(binding.start_ms, binding.end_ms), q.MINUTE)
        own = q.Reading("machine", q.MACHINE_VARIABLES, (period,))
        return ReportReadings(own, (own,))
    settled = None if now_ms is None else now_ms - (limits.MACHINE_HOUR_SPREAD_WINDOWS + 1) * q.WINDOW_MS
    slices = q.range_slices(binding.start_ms, binding.end_ms, hours_until_ms=settled)
    machines = tuple(q.Reading("machine", q.WORKSHOP_VARIABLES, (s,)) for s in slices)
    return ReportReadings(q.WORKSHOPS.with_slices(slices), machines)


def planned_readings(binding: q.Binding, calendar: Calendar) -> tuple[q.Reading, ...]:
    """Where the period's planned time reads: its planned spans, each split like a period (``range_slices``),
    as one workshop reading (its slices add up in one statement), or for a selection of machines one reading of
    their own windows per span. Empty when nothing is planned in the period."""
    spans = calendar.planned_spans(binding.start_ms, binding.end_ms)
    if not spans:
        return ()
    if (binding.variables or {}).get(q.MACHINE):
        return tuple(
            q.Reading("machine", q.MACHINE_VARIABLES, (q.Slice(q.between(start, end), q.MINUTE),))
            for start, end in spans
        )
    slices = tuple(piece for start, end in spans for piece in q.range_slices(start, end))
    return (q.WORKSHOPS.with_slices(slices),)


def _totals_by_type(client: InfluxQuery, binding: q.Binding, readings: Sequence[q.Reading]) -> dict[str, Counter[str]]:
    """The state totals (ms per state, observed, units, defects) per machine type, added up over the readings."""
    totals: dict[str, Counter[str]] = {}
    for reading in readings:
        for row in _rows(client, q.state_totals(Tag.MACHINE_TYPE, reading=reading), binding):
            counter = totals.setdefault(row[Tag.MACHINE_TYPE], Counter())
            counter.update({f: int(row[f] or 0) for f in q.KIND_FIELDS["state"]})
    return totals


def _by_state(totals: Counter[str]) -> dict[MachineState, int]:
    return {s: totals[state_field(s)] for s in STATE_ORDER}


def planned_figures(
    client: InfluxQuery, binding: q.Binding, readings: ReportReadings, calendar: Calendar
) -> tuple[PlannedTime, dict[MachineType, Oee]]:
    """Machine time inside and outside planned time, and OEE per machine type over planned time."""
    inside_by_type = _totals_by_type(client, binding, planned_readings(binding, calendar))
    whole = sum(_totals_by_type(client, binding, (readings.workshops,)).values(), Counter[str]())
    inside = sum(inside_by_type.values(), Counter[str]())
    oee: dict[MachineType, Oee] = {}
    for machine_type in MachineType:
        totals = inside_by_type.get(machine_type.value)
        if totals and totals[Field.OBSERVED_MS]:
            oee[machine_type] = Oee(**q.oee_of(totals, machine_type))
    planned = PlannedTime(
        calendar.planned_ms(binding.start_ms, binding.end_ms),
        _by_state(inside),
        {s: ms - inside[state_field(s)] for s, ms in _by_state(whole).items()},
    )
    return planned, oee


def micro_stops(client: InfluxQuery, binding: q.Binding, limits_s: Mapping[str, float]) -> list[MicroStops]:
    rows = _rows(client, q.micro_stops(micro_stop_limits_ms(limits_s), Tag.WORKSHOP, Tag.MACHINE_TYPE), binding)
    return sorted(
        (
            MicroStops(r["workshop"], r["machine_type"], limits_s[r["machine_type"]], int(r["stops"]), int(r["ms"]))
            for r in rows
            if r["stops"]
        ),
        key=lambda m: (m.workshop, m.machine_type),
    )


def _rows(client: InfluxQuery, query: q.Query, binding: q.Binding) -> list[dict[str, Any]]:
    return client.rows(q.bind(query.influxql, binding))


def _by(rows: Sequence[dict[str, Any]], tag: str, value: str) -> dict[str, float]:
    return {r[tag]: float(r[value]) for r in rows if r.get(value) is not None}


def worst_machines(client: InfluxQuery, binding: q.Binding, readings: Sequence[q.Reading]) -> list[WorstMachine]:
    """The machines with most DOWN time: InfluxDB ranks them when one reading covers the period; otherwise each
    machine's DOWN time is added up over the readings here, and ranked."""
    if len(readings) == 1:
        rows = _rows(client, q.worst_machines(reading=readings[0]), binding)
        worst = [WorstMachine(r["machine_id"], r["workshop"], int(r["down_ms"])) for r in rows]
    else:
        down: Counter[tuple[str, str]] = Counter()
        for reading in readings:
            for r in _rows(client, q.machine_downtime(reading), binding):
                down[(r["machine_id"], r["workshop"])] += int(r["down_ms"] or 0)
        worst = [WorstMachine(machine, workshop, ms) for (machine, workshop), ms in down.items()]
    return sorted(worst, key=lambda w: (-w.down_ms, w.machine_id))[: q.WORST_MACHINES]


def machines_by_state(client: InfluxQuery, binding: q.Binding) -> dict[str, dict[MachineState, int]]:
    """Machines per state of each workshop at the range end: the settled state-now snapshot (dashboards/state_now.py;
    one point per workshop and machine type); a selection of machines, which the snapshot cannot narrow to, from
    their own last points."""
    counts: dict[str, dict[MachineState, int]] = {}
    if (binding.variables or {}).get(q.MACHINE):
        for row in _rows(client, q.current_states(), binding):
            counts.setdefault(row["workshop"], dict.fromkeys(STATE_ORDER, 0))[STATE_ORDER[row["state_code"]]] += 1
    else:
        for row in _rows(client, q.machines_by_state(), binding):
            counts[row["workshop"]] = {s: int(row[machines_field(s)] or 0) for s in STATE_ORDER}
    return dict(sorted((w, c) for w, c in counts.items() if any(c.values())))


def _timelines(
    client: InfluxQuery, binding: q.Binding, machines: Sequence[str] | None
) -> dict[str, dict[str, list[Segment]]]:
    """Segments per machine: the state in force at the start (the last change before it), then each change.
    ``machines``: only these (else every machine the binding selects)."""
    if machines is not None:
        binding = q.Binding(
            binding.start_ms,
            binding.end_ms,
            binding.interval_ms,
            {**(binding.variables or {}), q.MACHINE: tuple(machines)},
            binding.resolution,
        )
    before = q.Binding(binding.start_ms - 1, binding.start_ms, binding.interval_ms, binding.variables)
    workshop_of: dict[str, str] = {}
    changes: dict[str, list[tuple[int, MachineState]]] = {}
    for row in _rows(client, q.current_states(), before):
        workshop_of[row["machine_id"]] = row["workshop"]
        changes.setdefault(row["machine_id"], []).append((binding.start_ms, STATE_ORDER[row["state_code"]]))
    for row in _rows(client, q.state_changes(), binding):
        workshop_of[row["machine_id"]] = row["workshop"]
        changes.setdefault(row["machine_id"], []).append((row["time"], MachineState(row["state"])))
    result: dict[str, dict[str, list[Segment]]] = {}
    for machine, points in sorted(changes.items()):
        points.sort(key=lambda p: p[0])
        ends = [p[0] for p in points[1:]] + [binding.end_ms]
        segments = [Segment(t, end, s) for (t, s), end in zip(points, ends, strict=True) if end > t]
        result.setdefault(workshop_of.get(machine, "?"), {})[machine] = segments
    return result


def collect(
    client: InfluxQuery,
    binding: q.Binding,
    *,
    readings: ReportReadings | None = None,
    timeline_machines: int | None = TIMELINE_MACHINES,
    calendar: Calendar | None = None,
    micro_stop_s: Mapping[str, float] | None = None,
    orders: OrderBook | None = None,
    idle_unexplained_s: float = OperatorSettings().idle_unexplained_s,
    now_ms: int | None = None,
) -> ReportData:
    """The report's figures. ``readings``: where to read (default ``report_readings``; the benchmark compares
    with the raw points); ``timeline_machines``: past this many machines, timelines of the worst only (None: all);
    ``calendar``: planned time (default: the default calendar, all time planned); ``micro_stop_s``: micro-stop
    thresholds per machine type (default: the settings' defaults); ``orders``: the styles' standard times and the
    orders' targets (default: none known, the jobs the machines report are shown without them);
    ``idle_unexplained_s``: an IDLE with this much planned time and no reason is unexplained; ``now_ms``: when
    the report is made (default: the clock), for which hours' roll-ups are all there. The downtime is
    per classified reason: the controller's, or an operator's where the controller gave none."""
    readings = readings or report_readings(binding, now_ms=round(time.time() * 1000) if now_ms is None else now_ms)
    workshops = readings.workshops
    total = _rows(client, q.utilisation(reading=workshops), binding)
    planned, oee = planned_figures(client, binding, readings, calendar or default_calendar())
    by_state = machines_by_state(client, binding)
    by_reason = _rows(client, q.downtime_by_reason(workshops), binding)
    stops = collect_stops(
        client,
        binding,
        rule=UnexplainedRule(
            int(idle_unexplained_s * 1000), calendar, micro_stop_limits_ms(micro_stop_s or DEFAULT_MICRO_STOP_S)
        ),
        down_ms_by_reason={r["reason"]: round(float(r["minutes"]) * q.MS_PER_MINUTE) for r in by_reason},
        stop_counts={r["reason"]: int(r["stops"]) for r in by_reason},
    )
    downtime = [
        Downtime(reason, ms / q.MS_PER_MINUTE, stops.classified_stop_counts.get(reason, 0))
        for reason, ms in stops.classified_downtime_ms.items()
    ]
    worst = worst_machines(client, binding, readings.machines)
    machines = sum(sum(c.values()) for c in by_state.values())
    worst_only = timeline_machines is not None and machines > timeline_machines
    return ReportData(
        start_ms=binding.start_ms,
        end_ms=binding.end_ms,
        utilisation=total[0]["utilisation"] if total else None,
        utilisation_by_workshop=_by(
            _rows(client, q.utilisation("workshop", reading=workshops), binding), "workshop", "utilisation"
        ),
        utilisation_by_type=_by(
            _rows(client, q.utilisation("machine_type", reading=workshops), binding), "machine_type", "utilisation"
        ),
        downtime=sorted(downtime, key=lambda d: -d.minutes),
        worst=worst,
        oee=oee,
        machines_by_state=by_state,
        timelines=_timelines(client, binding, [w.machine_id for w in worst] if worst_only else None)
        if worst or not worst_only
        else {},
        timelines_worst_only=worst_only,
        planned=planned,
        micro_stops=micro_stops(client, binding, micro_stop_s or DEFAULT_MICRO_STOP_S),
        orders=collect_orders(client, binding, orders or OrderBook()),
        stops=stops,
    )
