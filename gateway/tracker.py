"""State detection and edge computation for one machine (pure: readings in, contract messages out).

The tracker knows when each state began, so it states every duration exactly, and it splits time at fixed
window boundaries so each window's accumulator is exact. Units in a window are the counter difference between
the readings at its two edges (the runner reads every machine at each window edge).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ftel.contract.models import MachineMessage, MachineMeta, StateChange, StateWindow, Telemetry
from ftel.contract.states import STATE_ORDER, MachineState
from gateway.driver import MachineInfo, Reading


@dataclass(frozen=True, slots=True)
class Origin:
    """Where this gateway's messages come from."""

    site: str
    workshop: str
    gateway_id: str


class MachineTracker:
    def __init__(
        self,
        origin: Origin,
        info: MachineInfo,
        *,
        window_ms: int,
        telemetry_interval_ms: int,
        next_seq: Callable[[], int],
    ) -> None:
        self._origin = origin
        self._info = info
        self._window_ms = window_ms
        self._telemetry_interval_ms = telemetry_interval_ms
        self._next_seq = next_seq
        self._last: Reading | None = None
        self._since_ms = 0
        self._window_start = 0
        self._units_at_window_start = 0
        self._defects_at_window_start = 0
        self._next_telemetry_ms = 0
        self._reset_window_sums()

    def _reset_window_sums(self) -> None:
        self._state_ms = dict.fromkeys(STATE_ORDER, 0)
        self._down_ms: dict[str, int] = {}
        self._stops: dict[str, int] = {}

    def _common(self, ts: int) -> dict[str, object]:
        o, i = self._origin, self._info
        return {
            "site": o.site,
            "workshop": o.workshop,
            "gateway_id": o.gateway_id,
            "seq": self._next_seq(),
            "ts": ts,
            "machine_type": i.machine_type,
            "machine_id": i.machine_id,
        }

    def meta(self, ts: int) -> MachineMeta:
        i = self._info
        return MachineMeta(
            **self._common(ts),  # type: ignore[arg-type]
            model=i.model,
            line=i.line,
            rated_speed=i.rated_speed,
            speed_unit=i.speed_unit,
            service_interval_h=i.service_interval_h,
        )

    @property
    def state(self) -> MachineState | None:
        return self._last.state if self._last else None

    def observe(self, reading: Reading) -> list[MachineMessage]:
        out: list[MachineMessage] = []
        last = self._last
        if last is None:
            self._since_ms = reading.at_ms
            self._window_start = reading.at_ms - reading.at_ms % self._window_ms
            self._units_at_window_start = reading.units_total
            self._defects_at_window_start = reading.defects_total
            out.append(self._change(reading, MachineState.OFFLINE, None, 0))
            self._count_stop(reading)
        else:
            if reading.at_ms < last.at_ms:
                return out
            out.extend(self._advance(last, reading))
            if (reading.state, reading.reason) != (last.state, last.reason):
                out.append(self._change(reading, last.state, last.reason, reading.at_ms - self._since_ms))
                self._since_ms = reading.at_ms
                self._count_stop(reading)
        if reading.at_ms >= self._next_telemetry_ms:
            out.append(self._telemetry(reading))
            self._next_telemetry_ms = (reading.at_ms // self._telemetry_interval_ms + 1) * self._telemetry_interval_ms
        self._last = reading
        return out

    def close(self, at_ms: int) -> list[MachineMessage]:
        """On shutdown: the time up to ``at_ms`` as a partial window (the full one overwrites it later)."""
        if self._last is None or at_ms <= self._window_start:
            return []
        out = self._advance(self._last, self._last_at(at_ms))
        if at_ms > self._window_start:
            out.append(self._window(at_ms, self._last, partial=True))
        return out

    def _last_at(self, at_ms: int) -> Reading:
        assert self._last is not None
        r = self._last
        return Reading(
            at_ms,
            r.state,
            r.reason,
            r.units_total,
            r.defects_total,
            r.speed,
            r.temperature,
            r.run_ms_since_service,
        )

    def _count_stop(self, reading: Reading) -> None:
        if reading.state is MachineState.DOWN and reading.reason:
            self._stops[reading.reason] = self._stops.get(reading.reason, 0) + 1

    def _add(self, state: MachineState, reason: str | None, ms: int) -> None:
        self._state_ms[state] += ms
        if state is MachineState.DOWN and reason:
            self._down_ms[reason] = self._down_ms.get(reason, 0) + ms

    def _advance(self, last: Reading, reading: Reading) -> list[MachineMessage]:
        """Account the time from ``last`` to ``reading`` in the last state, closing every window passed."""
        out: list[MachineMessage] = []
        cursor = last.at_ms
        while self._window_start + self._window_ms <= reading.at_ms:
            edge = self._window_start + self._window_ms
            self._add(last.state, last.reason, edge - cursor)
            # The counters at the edge: this reading's if it stands on the edge, else the last known.
            at_edge = reading if reading.at_ms == edge else last
            out.append(self._window(edge, at_edge, partial=False))
            self._window_start = edge
            self._units_at_window_start = at_edge.units_total
            self._defects_at_window_start = at_edge.defects_total
            self._reset_window_sums()
            cursor = edge
        self._add(last.state, last.reason, reading.at_ms - cursor)
        return out

    def _window(self, ts: int, counters: Reading, *, partial: bool) -> StateWindow:
        return StateWindow(
            **self._common(ts),  # type: ignore[arg-type]
            window_start=self._window_start,
            window_ms=self._window_ms,
            state_ms=dict(self._state_ms),
            down_ms_by_reason=dict(self._down_ms),
            stops_by_reason=dict(self._stops),
            units=counters.units_total - self._units_at_window_start,
            defects=counters.defects_total - self._defects_at_window_start,
            partial=partial,
        )

    def _change(
        self, reading: Reading, prev_state: MachineState, prev_reason: str | None, prev_duration_ms: int
    ) -> StateChange:
        return StateChange(
            **self._common(reading.at_ms),  # type: ignore[arg-type]
            state=reading.state,
            reason=reading.reason,
            prev_state=prev_state,
            prev_reason=prev_reason,
            prev_duration_ms=prev_duration_ms,
        )

    def _telemetry(self, reading: Reading) -> Telemetry:
        return Telemetry(
            **self._common(reading.at_ms),  # type: ignore[arg-type]
            state=reading.state,
            speed=reading.speed,
            temperature=reading.temperature,
            units_total=reading.units_total,
            defects_total=reading.defects_total,
            run_ms_since_service=reading.run_ms_since_service,
        )
