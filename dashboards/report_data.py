"""What the shift report shows, read from InfluxDB through the same queries as the boards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dashboards import queries as q
from ftel.contract.states import STATE_ORDER, MachineState, MachineType
from ftel.storage.query import InfluxQuery


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


def _rows(client: InfluxQuery, query: q.Query, binding: q.Binding) -> list[dict[str, Any]]:
    return client.rows(q.bind(query.influxql, binding))


def _by(rows: Sequence[dict[str, Any]], tag: str, value: str) -> dict[str, float]:
    return {r[tag]: float(r[value]) for r in rows if r.get(value) is not None}


def _timelines(client: InfluxQuery, binding: q.Binding) -> dict[str, dict[str, list[Segment]]]:
    """Segments per machine: the state in force at the start (the last change before it), then each change."""
    before = q.Binding(binding.start_ms - 1, binding.start_ms, binding.interval_ms, binding.variables)
    workshop_of: dict[str, str] = {}
    changes: dict[str, list[tuple[int, MachineState]]] = {}
    for row in _rows(client, q.current_states(), before):
        workshop_of[row["machine_id"]] = row["workshop"]
        changes.setdefault(row["machine_id"], []).append((binding.start_ms, STATE_ORDER[row["state_code"]]))
    for row in _rows(client, q.current_states(), binding):
        workshop_of[row["machine_id"]] = row["workshop"]
    for row in _rows(client, q.state_changes(), binding):
        changes.setdefault(row["machine_id"], []).append((row["time"], MachineState(row["state"])))
    result: dict[str, dict[str, list[Segment]]] = {}
    for machine, points in sorted(changes.items()):
        points.sort(key=lambda p: p[0])
        ends = [p[0] for p in points[1:]] + [binding.end_ms]
        segments = [Segment(t, end, s) for (t, s), end in zip(points, ends, strict=True) if end > t]
        result.setdefault(workshop_of.get(machine, "?"), {})[machine] = segments
    return result


def collect(client: InfluxQuery, binding: q.Binding) -> ReportData:
    total = _rows(client, q.utilisation(), binding)
    oee: dict[MachineType, Oee] = {}
    for machine_type in MachineType:
        rows = _rows(client, q.oee(machine_type), binding)
        if rows:
            r = rows[0]
            oee[machine_type] = Oee(r["availability"], r["performance"], r["quality"], r["oee"])
    by_state: dict[str, dict[MachineState, int]] = {}
    for state in STATE_ORDER:
        for row in _rows(client, q.machines_in_state(state), binding):
            by_state.setdefault(row["workshop"], dict.fromkeys(STATE_ORDER, 0))[state] = int(row["machines"])
    downtime = [
        Downtime(r["reason"], float(r["minutes"]), int(r["stops"]))
        for r in _rows(client, q.downtime_by_reason(), binding)
    ]
    worst = [
        WorstMachine(r["machine_id"], r["workshop"], int(r["down_ms"]))
        for r in _rows(client, q.worst_machines(), binding)
    ]
    return ReportData(
        start_ms=binding.start_ms,
        end_ms=binding.end_ms,
        utilisation=total[0]["utilisation"] if total else None,
        utilisation_by_workshop=_by(_rows(client, q.utilisation("workshop"), binding), "workshop", "utilisation"),
        utilisation_by_type=_by(_rows(client, q.utilisation("machine_type"), binding), "machine_type", "utilisation"),
        downtime=sorted(downtime, key=lambda d: -d.minutes),
        worst=sorted(worst, key=lambda w: (-w.down_ms, w.machine_id)),
        oee=oee,
        machines_by_state=dict(sorted(by_state.items())),
        timelines=_timelines(client, binding),
    )
