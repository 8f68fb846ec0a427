"""The report's stops without a machine reason (docs/boards.md, "unexplained"): per workshop, how many ended in
the period and how long they were, still unexplained or classified by a person; and the downtime Pareto with the
classified reasons (the controller's reason where it gave one, the operator's where it gave none)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dashboards import queries as q
from ftel.contract.states import UNKNOWN_FAULT, MachineState, MachineType
from ftel.plant.reasons import MachineRef, Stop, StopFigures, UnexplainedRule, classified_downtime, stop_figures
from ftel.storage.query import InfluxQuery
from ftel.storage.schema import Field, Tag
from ftel.storage.stops import OPEN_STOP_LOOKBACK_MS


@dataclass(frozen=True, slots=True)
class StopsData:
    by_workshop: dict[str, StopFigures]
    # reason -> ms of downtime in the period, unknown_fault's classified part under the operators' reasons
    classified_downtime_ms: dict[str, int]
    # reason -> stops that began in the period, a classified unknown_fault stop under its operator's reason
    classified_stop_counts: dict[str, int]


def _rows(client: InfluxQuery, query: q.Query, binding: q.Binding) -> list[dict[str, Any]]:
    return client.rows(q.bind(query.influxql, binding))


def _within(binding: q.Binding, start_ms: int, end_ms: int) -> q.Binding:
    return q.Binding(start_ms, end_ms, binding.interval_ms, binding.variables, binding.resolution)


def read_stops(client: InfluxQuery, binding: q.Binding) -> list[Stop]:
    """Stops that ended in the period or in the week after it (those cross the period's end)."""
    rows = _rows(client, q.stops_ended(), _within(binding, binding.start_ms, binding.end_ms + OPEN_STOP_LOOKBACK_MS))
    return [
        Stop(
            MachineRef(r[Tag.SITE], r[Tag.WORKSHOP], MachineType(r[Tag.MACHINE_TYPE]), r[Tag.MACHINE_ID]),
            MachineState(r[Field.PREV_STATE]),
            r[Field.PREV_REASON] or "",
            int(r["time"]) - int(r[Field.PREV_DURATION_MS]),
            int(r["time"]),
        )
        for r in rows
        if r[Field.PREV_DURATION_MS] is not None
    ]


def read_reasons(client: InfluxQuery, binding: q.Binding, stops: Sequence[Stop]) -> dict[tuple[str, int], str]:
    if not stops:
        return {}
    first = min(s.start_ms for s in stops)
    rows = _rows(client, q.stop_reasons(), _within(binding, first, max(s.start_ms for s in stops) + 1))
    return {(r[Tag.MACHINE_ID], int(r["time"])): r[Field.REASON] for r in rows}


def collect_stops(
    client: InfluxQuery,
    binding: q.Binding,
    *,
    rule: UnexplainedRule,
    down_ms_by_reason: dict[str, int],
    stop_counts: dict[str, int],
) -> StopsData:
    """``down_ms_by_reason``, ``stop_counts``: the period's downtime and stops per controller reason."""
    stops = read_stops(client, binding)
    reasons = read_reasons(client, binding, stops)
    ended = [s for s in stops if s.end_ms is not None and s.end_ms < binding.end_ms]
    by_workshop = {
        workshop: stop_figures(
            [s for s in ended if s.machine.workshop == workshop],
            reasons,
            rule=rule,
        )
        for workshop in sorted({s.machine.workshop for s in ended})
    }
    pareto = classified_downtime(down_ms_by_reason, stops, reasons, start_ms=binding.start_ms, end_ms=binding.end_ms)
    counts = dict(stop_counts)
    for stop in stops:
        code = reasons.get(stop.key)
        began_inside = binding.start_ms <= stop.start_ms < binding.end_ms
        if code and began_inside and stop.state is MachineState.DOWN and stop.reason in ("", UNKNOWN_FAULT):
            counts[UNKNOWN_FAULT] = counts.get(UNKNOWN_FAULT, 0) - 1
            counts[code] = counts.get(code, 0) + 1
    return StopsData(by_workshop, pareto, {r: n for r, n in sorted(counts.items()) if n})
