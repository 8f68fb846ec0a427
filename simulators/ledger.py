"""Ground truth: per machine and fixed window, exact milliseconds in each state, stops and downtime by reason,
units and defects, straight from the simulated segments (independently of the gateway's own accounting).

Ledger format (JSON Lines, one object per machine and window, documented in docs/ledger.md):
{"site", "workshop", "machine_type", "machine_id", "window_start", "window_ms",
 "state_ms": {STATE: ms}, "down_ms_by_reason": {reason: ms}, "stops_by_reason": {reason: n},
 "units": n, "defects": n}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ftel.contract.states import STATE_ORDER, MachineState
from simulators.machine import MachineModel, count_defects, plant_models
from simulators.plant import Plant
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


def machine_ledger(
    model: MachineModel, *, site: str, workshop: str, end_ms: int, window_ms: int
) -> Iterator[LedgerRow]:
    start = model.start_ms
    first_window = start - start % window_ms
    rows: dict[int, LedgerRow] = {}

    def row(window_start: int) -> LedgerRow:
        if window_start not in rows:
            rows[window_start] = LedgerRow(
                site, workshop, model.spec.type.value, model.spec.id, window_start, window_ms
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
        cursor = segment.start_ms
        while cursor < seg_end:
            window_start = cursor - cursor % window_ms
            piece_end = min(seg_end, window_start + window_ms)
            r = row(window_start)
            r.state_ms[segment.state.value] += piece_end - cursor
            if segment.state is MachineState.DOWN and segment.reason:
                r.down_ms_by_reason[segment.reason] = r.down_ms_by_reason.get(segment.reason, 0) + piece_end - cursor
            if segment.state is MachineState.RUNNING:
                before = model.units_at(segment, cursor)
                after = model.units_at(segment, piece_end)
                r.units += after - before
                r.defects += count_defects(model.seed, before, after, PROFILES[model.spec.type].defect_rate_bp)
            cursor = piece_end
    window = first_window
    while window < end_ms:
        yield row(window)
        window += window_ms


def plant_ledger(
    plant: Plant, *, start_ms: int, end_ms: int, window_ms: int, workshop: str | None = None
) -> Iterator[LedgerRow]:
    for workshop_id, model in plant_models(plant, start_ms=start_ms, workshop=workshop):
        yield from machine_ledger(model, site=plant.site, workshop=workshop_id, end_ms=end_ms, window_ms=window_ms)


def write_ledger(rows: Iterable[LedgerRow], path: Path) -> int:
    count = 0
    with path.open("w") as out:
        for r in rows:
            out.write(json.dumps(asdict(r), sort_keys=True) + "\n")
            count += 1
    return count


def read_ledger(path: Path) -> list[LedgerRow]:
    return [LedgerRow(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
