"""Per-workshop roll-ups made at the edge (pure): the sum of the machine windows the gateway sends, per machine
type, per window (one minute by default) and per hour.

A window's roll-up goes out once every machine of the gateway has closed that window, so it holds all of them;
the hour's once its last window has. Both sum the very windows that went out, so a roll-up always equals the
sum of its raw points, whatever the InfluxDB (no continuous queries or tasks needed). Their state is part of
the gateway's checkpoint; partial roll-ups at a stop are overwritten by the full ones after the restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ftel.contract.models import StateWindow
from ftel.contract.states import STATE_ORDER, MachineState, MachineType

HOUR_MS = 3_600_000


def _zero() -> dict[MachineState, int]:
    return dict.fromkeys(STATE_ORDER, 0)


@dataclass(slots=True)
class Accumulator:
    machines: set[str] = field(default_factory=set)
    state_ms: dict[MachineState, int] = field(default_factory=_zero)
    down_ms: dict[str, int] = field(default_factory=dict)
    stops: dict[str, int] = field(default_factory=dict)
    units: int = 0
    defects: int = 0

    def add(self, other: Accumulator) -> None:
        self.machines |= other.machines
        self._add(other.state_ms, other.down_ms, other.stops, other.units, other.defects)

    def add_window(self, window: StateWindow) -> None:
        """Add one machine window (as ``add`` of its own accumulator, without making one: every window of a
        county's gateways goes through here twice)."""
        self.machines.add(window.machine_id)
        self._add(window.state_ms, window.down_ms_by_reason, window.stops_by_reason, window.units, window.defects)

    def _add(
        self,
        state_ms: Mapping[MachineState, int],
        down_ms: Mapping[str, int],
        stops: Mapping[str, int],
        units: int,
        defects: int,
    ) -> None:
        mine = self.state_ms
        for state, ms in state_ms.items():
            mine[state] += ms
        for reason, ms in down_ms.items():
            self.down_ms[reason] = self.down_ms.get(reason, 0) + ms
        for reason, n in stops.items():
            self.stops[reason] = self.stops.get(reason, 0) + n
        self.units += units
        self.defects += defects


ByType = dict[MachineType, Accumulator]


@dataclass(slots=True)
class RollupState:
    windows: dict[int, ByType] = field(default_factory=dict)  # window start -> closed machine windows so far
    hours: dict[int, ByType] = field(default_factory=dict)  # hour start -> window roll-ups emitted so far
    # hour start -> machine id -> its windows in that hour so far (per-machine hourly roll-ups: "worst
    # machines" over a shift of a county's fleet reads these, not 60 times as many raw windows)
    machine_hours: dict[int, dict[str, tuple[MachineType, Accumulator]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rolled:
    """One roll-up to send: ``window_ms`` long from ``window_start``, closed at ``ts``; of one machine when
    ``machine_id`` is set, else of the workshop's machines of that type."""

    machine_type: MachineType
    window_start: int
    window_ms: int
    ts: int
    totals: Accumulator
    partial: bool = False
    machine_id: str | None = None


def _merge(into: ByType, source: ByType) -> None:
    for machine_type, accumulator in source.items():
        into.setdefault(machine_type, Accumulator()).add(accumulator)


def _rolled(by_type: ByType, start: int, length: int, ts: int, *, partial: bool = False) -> list[Rolled]:
    return [Rolled(t, start, length, ts, by_type[t], partial) for t in sorted(by_type) if by_type[t].machines]


def add_windows(state: RollupState, windows: Iterable[StateWindow]) -> None:
    for window in windows:
        if window.partial:
            continue
        by_type = state.windows.setdefault(window.window_start, {})
        by_type.setdefault(window.machine_type, Accumulator()).add_window(window)
        if HOUR_MS % window.window_ms == 0:
            hour = state.machine_hours.setdefault(window.window_start - window.window_start % HOUR_MS, {})
            _, accumulator = hour.setdefault(window.machine_id, (window.machine_type, Accumulator()))
            accumulator.add_window(window)


def _machine_rolled(
    machines: dict[str, tuple[MachineType, Accumulator]], start: int, ts: int, *, partial: bool = False
) -> list[Rolled]:
    return [
        Rolled(machine_type, start, HOUR_MS, ts, totals, partial, machine_id)
        for machine_id, (machine_type, totals) in sorted(machines.items())
    ]


def due(state: RollupState, *, window_ms: int, oldest_open_window: int | None) -> list[Rolled]:
    """Roll-ups of every window all machines have closed (their open window starts at ``oldest_open_window`` or
    later), and of every hour whose last window is among them."""
    if oldest_open_window is None:
        return []
    out: list[Rolled] = []
    hourly = HOUR_MS % window_ms == 0
    for start in sorted(w for w in state.windows if w < oldest_open_window):
        by_type = state.windows.pop(start)
        end = start + window_ms
        out.extend(_rolled(by_type, start, window_ms, end))
        if hourly:
            hour = start - start % HOUR_MS
            _merge(state.hours.setdefault(hour, {}), by_type)
            if end % HOUR_MS == 0:
                out.extend(_rolled(state.hours.pop(hour), hour, HOUR_MS, end))
                out.extend(_machine_rolled(state.machine_hours.pop(hour, {}), hour, end))
    return out


def partial(state: RollupState, closing: Iterable[StateWindow], *, window_ms: int, at_ms: int) -> list[Rolled]:
    """At a stop: the open window and the open hour as they stand, with the machines' partial windows (nothing
    is kept: after a restart the full ones overwrite these)."""
    now: ByType = {}
    window_start: int | None = None
    for window in closing:
        window_start = window.window_start
        now.setdefault(window.machine_type, Accumulator()).add_window(window)
    if window_start is None:
        return []
    for start, by_type in state.windows.items():
        if start == window_start:
            _merge(now, by_type)
    out = _rolled(now, window_start, window_ms, at_ms, partial=True)
    if HOUR_MS % window_ms == 0:
        hour_start = window_start - window_start % HOUR_MS
        hour: ByType = {}
        _merge(hour, state.hours.get(hour_start, {}))
        _merge(hour, now)
        out.extend(_rolled(hour, hour_start, HOUR_MS, at_ms, partial=True))
        machines: dict[str, tuple[MachineType, Accumulator]] = {}
        for machine_id, (machine_type, accumulator) in state.machine_hours.get(hour_start, {}).items():
            machines[machine_id] = (machine_type, Accumulator())
            machines[machine_id][1].add(accumulator)  # a copy: the stored hour carries on after a restart
        for window in closing:
            entry = machines.setdefault(window.machine_id, (window.machine_type, Accumulator()))
            entry[1].add_window(window)
        out.extend(_machine_rolled(machines, hour_start, at_ms, partial=True))
    return out
