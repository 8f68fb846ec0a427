"""Figures per order and per style, read from InfluxDB: the machines' job changes, and their windows split
exactly at the changes (ftel/plant/orders.py, docs/orders.md).

Where it reads: a machine's hours from its machine hours (one point an hour), except the hours in which it
changed jobs, which are read as its own one-minute windows (a change's ``before`` is counted within its gateway
window); the minutes at the edges of the span are read as windows too. So a long order costs one point a machine
an hour, and the split is exact.

"To date" is from an order's first job change to the period's end; "period" is the report's range. The estimated
finish is the period's end plus the order's remaining good pieces at the period's rate of good pieces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dashboards import queries as q
from ftel.contract.states import MachineState
from ftel.plant.orders import (
    Counts,
    Job,
    JobChange,
    OrderBook,
    OrderFigures,
    StyleFigures,
    WindowCounts,
    order_figures,
    resolve_programs,
    split,
    style_figures,
    totals,
)
from ftel.storage.query import InfluxQuery
from ftel.storage.schema import Field, Tag, state_field


@dataclass(frozen=True, slots=True)
class MachineJob:
    """A machine's job at the period's end, since when, and who set it."""

    workshop: str
    machine_id: str
    job: Job
    since_ms: int
    source: str
    set_by: str


@dataclass(frozen=True, slots=True)
class OrdersData:
    styles: list[StyleFigures]
    orders: list[OrderFigures]
    jobs_now: list[MachineJob]


@dataclass(frozen=True, slots=True)
class StoredChange:
    workshop: str
    machine_type: str
    change: JobChange


def read_changes(client: InfluxQuery, binding: q.Binding, book: OrderBook | None = None) -> list[StoredChange]:
    """Every job change of the selected machines at or before the end, with the machine's workshop and type;
    those read from a controller given their style by ``book`` (``resolve_programs``)."""
    rows = client.rows(q.bind(q.job_changes().influxql, binding))
    stored = {r[Tag.MACHINE_ID]: (r[Tag.WORKSHOP], r[Tag.MACHINE_TYPE]) for r in rows}
    resolved = resolve_programs((_change(r) for r in rows), book or OrderBook())
    return [StoredChange(*stored[c.machine_id], c) for c in resolved]


def _change(row: Mapping[str, Any]) -> JobChange:
    return JobChange(
        machine_id=row[Tag.MACHINE_ID],
        at_ms=int(row["time"]),
        job=Job(row[Field.STYLE] or "", row[Field.ORDER] or ""),
        before=Counts(
            int(row[Field.UNITS_BEFORE] or 0), int(row[Field.DEFECTS_BEFORE] or 0), int(row[Field.RUN_MS_BEFORE] or 0)
        ),
        source=row[Field.SOURCE] or "",
        who=row[Field.SET_BY] or "",
        program=row.get(Field.PROGRAM) or "",
    )


def current_job(client: InfluxQuery, machine_id: str, at_ms: int) -> Job | None:
    """The job ``machine_id`` is on at ``at_ms`` (None: never set): what the operator page keeps of a job when it
    changes only the style."""
    binding = q.Binding(at_ms, at_ms + 1, variables={q.MACHINE: (machine_id,)})
    rows = client.rows(q.bind(q.current_jobs().influxql, binding))
    return Job(rows[0][Field.STYLE] or "", rows[0][Field.ORDER] or "") if rows else None


def windows(client: InfluxQuery, binding: q.Binding, *, hourly: bool) -> list[WindowCounts]:
    running = state_field(MachineState.RUNNING)
    return [
        WindowCounts(
            r[Tag.MACHINE_ID],
            int(r["time"]),
            int(r[Field.WINDOW_MS]),
            Counts(int(r[Field.UNITS] or 0), int(r[Field.DEFECTS] or 0), int(r[running] or 0)),
        )
        for r in client.rows(q.bind(q.machine_counts(hourly).influxql, binding))
    ]


def windows_made(
    client: InfluxQuery, binding: q.Binding, changes: Sequence[JobChange], start_ms: int, end_ms: int
) -> list[WindowCounts]:
    """The selected machines' windows in [start_ms, end_ms): machine hours where no change falls, one-minute
    windows in the hours of a change and at the edges."""
    machines = {c.machine_id for c in changes}
    first_hour = -(-start_ms // q.MS_PER_HOUR) * q.MS_PER_HOUR
    last_hour = end_ms // q.MS_PER_HOUR * q.MS_PER_HOUR
    if first_hour >= last_hour:
        return [
            w for w in windows(client, _narrowed(binding, start_ms, end_ms), hourly=False) if w.machine_id in machines
        ]
    changed = {(c.machine_id, c.at_ms - c.at_ms % q.MS_PER_HOUR) for c in changes}
    out = [
        w
        for w in windows(client, _narrowed(binding, first_hour, last_hour), hourly=True)
        if w.machine_id in machines and (w.machine_id, w.window_start) not in changed
    ]
    for span_start, span_end in ((start_ms, first_hour), (last_hour, end_ms)):
        if span_start < span_end:
            found = windows(client, _narrowed(binding, span_start, span_end), hourly=False)
            out.extend(w for w in found if w.machine_id in machines)
    by_hour: dict[int, set[str]] = {}
    for machine_id, hour in changed:
        if first_hour <= hour < last_hour:
            by_hour.setdefault(hour, set()).add(machine_id)
    for hour, in_hour in sorted(by_hour.items()):
        found = windows(client, _narrowed(binding, hour, hour + q.MS_PER_HOUR, in_hour), hourly=False)
        out.extend(w for w in found if w.machine_id in in_hour)
    return out


# An hour's one-minute windows are asked for by machine when so few changed jobs in it; past this many, for all.
NAMED_MACHINES = 100


def _narrowed(binding: q.Binding, start_ms: int, end_ms: int, machines: set[str] | None = None) -> q.Binding:
    variables = dict(binding.variables or {})
    if machines is not None and len(machines) <= NAMED_MACHINES:
        variables[q.MACHINE] = tuple(sorted(machines))
    return q.Binding(start_ms, end_ms, binding.interval_ms, variables, binding.resolution)


def _machines_per_order(parts: Iterable[tuple[Job, WindowCounts]]) -> dict[str, int]:
    """How many machines made something (or ran) for each order."""
    machines: dict[str, set[str]] = {}
    for job, part in parts:
        if job.order and (part.counts.units or part.counts.run_ms):
            machines.setdefault(job.order, set()).add(part.machine_id)
    return {order: len(found) for order, found in machines.items()}


def collect_orders(client: InfluxQuery, binding: q.Binding, book: OrderBook) -> OrdersData:
    """Per style and per order over the binding's range, and to date; each machine's job at the end."""
    found = read_changes(client, binding, book)
    changes = [f.change for f in found]
    workshop_of = {f.change.machine_id: f.workshop for f in found}
    if not changes:
        return OrdersData([], order_figures(book, {}, {}, {}, period_ms=0, as_of_ms=binding.end_ms), [])
    period_parts = list(split(windows_made(client, binding, changes, binding.start_ms, binding.end_ms), changes))
    period = totals(period_parts)
    since = min(c.at_ms for c in changes)
    if since < binding.start_ms:
        to_date = totals(split(windows_made(client, binding, changes, since, binding.end_ms), changes))
    else:
        to_date = period
    last: dict[str, JobChange] = {}
    for change in sorted(changes, key=lambda c: c.at_ms):
        last[change.machine_id] = change
    jobs_now = [MachineJob(workshop_of[m], m, c.job, c.at_ms, c.source, c.who) for m, c in sorted(last.items())]
    return OrdersData(
        styles=style_figures(book, period),
        orders=order_figures(
            book,
            period,
            to_date,
            _machines_per_order(period_parts),
            period_ms=binding.end_ms - binding.start_ms,
            as_of_ms=binding.end_ms,
        ),
        jobs_now=jobs_now,
    )
