"""The state-now snapshot (docs/scale.md, "State now at county scale"): how many machines of each workshop and
machine type are in each state at the end of a whole minute, settled from each machine's last ``machine_state``
point by then, as one point per workshop and machine type (``rollup_state_now``).

The "now" counts of the boards and the report read it: the last point of each of 60,000 machines is 60,000
series for InfluxDB to open (seconds), a snapshot a few hundred. It is made from the raw points whoever wrote
them (a gateway's state changes, ingest's OFFLINE for a vanished gateway), so it equals them at its minute; it
is as old as the last settle (every minute beside ingest, ``ftel settle --every``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from dashboards import queries as q
from ftel.contract.states import STATE_ORDER, MachineState
from ftel.storage.lineproto import Point
from ftel.storage.points import state_now_point
from ftel.storage.query import InfluxQuery

Series = tuple[str, str, str]  # site, workshop, machine type


def snapshot_minute(at_ms: int) -> int:
    """The whole minute a snapshot taken at ``at_ms`` holds the states up to (what is stored by then)."""
    return at_ms - at_ms % q.MS_PER_MINUTE


def count_states(rows: Iterable[Mapping[str, Any]]) -> dict[Series, Counter[MachineState]]:
    """Machines per state of each workshop and machine type, from each machine's last state code."""
    counts: dict[Series, Counter[MachineState]] = {}
    for row in rows:
        series = (row["site"], row["workshop"], row["machine_type"])
        counts.setdefault(series, Counter())[STATE_ORDER[row["state_code"]]] += 1
    return counts


def state_now_points(client: InfluxQuery, at_ms: int) -> list[Point]:
    """The snapshot of the whole minute before ``at_ms``: every machine's last state before that minute, counted,
    stamped at its last millisecond, where a range ending on the minute reads its "now" (a range is half-open:
    its "now" is its last millisecond, ``${__to}``). Raises QueryError."""
    minute = snapshot_minute(at_ms)
    binding = q.Binding(minute - q.MS_PER_MINUTE, minute)
    rows = client.rows(q.bind(q.machine_last_states().influxql, binding))
    return [state_now_point(series, at_ms=minute - 1, counts=c) for series, c in sorted(count_states(rows).items())]
