"""State detection and edge computation for one machine (pure: readings in, contract messages out).

The tracker knows when each state began, so it states every duration exactly, and it splits time at fixed
window boundaries so each window's accumulator is exact. Units in a window are the counter difference between
the readings at its two edges (the runner reads every machine at each window edge). Its whole state is a
plain ``TrackerState`` that the gateway checkpoints with its spool, so a restarted gateway carries on where it
stopped: no window is overwritten with less data, no stop is counted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ftel.contract.models import (
    MachineMessage,
    MachineMeta,
    MachineNow,
    ProgramChange,
    StateChange,
    StateWindow,
    Telemetry,
)
from ftel.contract.states import STATE_ORDER, MachineState
from gateway.driver import MachineInfo, Reading


@dataclass(frozen=True, slots=True)
class Origin:
    """Where this gateway's messages come from."""

    site: str
    workshop: str
    gateway_id: str


def _zero_states() -> dict[MachineState, int]:
    return dict.fromkeys(STATE_ORDER, 0)


@dataclass(slots=True)
class TrackerState:
    """Everything a tracker knows; restoring it resumes the tracker exactly."""

    last: Reading | None = None  # the newest reading accounted for
    since_ms: int = 0  # when the current state began
    window_start: int = 0
    units_at_window_start: int = 0
    defects_at_window_start: int = 0
    next_telemetry_ms: int = 0
    state_ms: dict[MachineState, int] = field(default_factory=_zero_states)
    down_ms: dict[str, int] = field(default_factory=dict)
    stops: dict[str, int] = field(default_factory=dict)
    # Added to the controller's counters so they never go back: a controller (or a poll driver) that counts
    # from zero again after a restart carries on from the last total.
    units_offset: int = 0
    defects_offset: int = 0
    # The state before an OFFLINE gap: coming back into the same DOWN is the same stop, not a second one.
    before_offline: tuple[MachineState, str | None] | None = None


class MachineTracker:
    def __init__(
        self,
        origin: Origin,
        info: MachineInfo,
        *,
        window_ms: int,
        telemetry_interval_ms: int,
        next_seq: Callable[[], int],
        telemetry_phase_ms: int = 0,
        state: TrackerState | None = None,
    ) -> None:
        self._origin = origin
        self.info = info
        self._window_ms = window_ms
        self._telemetry_interval_ms = telemetry_interval_ms
        self._telemetry_phase_ms = telemetry_phase_ms
        self._next_seq = next_seq
        self.state = state or TrackerState()

    def _common(self, ts: int) -> dict[str, object]:
        o, i = self._origin, self.info
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
        i = self.info
        return MachineMeta(
            **self._common(ts),  # type: ignore[arg-type]
            model=i.model,
            line=i.line,
            rated_speed=i.rated_speed,
            speed_unit=i.speed_unit,
            service_interval_h=i.service_interval_h,
        )

    @property
    def last_ms(self) -> int | None:
        return self.state.last.at_ms if self.state.last else None

    def now(self) -> MachineNow | None:
        """The machine's state as last read, for a birth to re-state; None before the first reading."""
        last = self.state.last
        if last is None:
            return None
        return MachineNow(state=last.state, reason=last.reason, since_ms=self.state.since_ms)

    def observe(self, reading: Reading) -> list[MachineMessage]:
        st = self.state
        out: list[MachineMessage] = []
        last = st.last
        reading = self._continuous(reading, last)
        if last is None:
            # First sight: the state began before we looked, so it is neither a change nor a stop; the birth
            # that follows re-states it.
            st.since_ms = reading.at_ms
            st.window_start = reading.at_ms - reading.at_ms % self._window_ms
            st.units_at_window_start = reading.units_total
            st.defects_at_window_start = reading.defects_total
            # The first sample at the machine's own moment in the interval (its phase), not at first sight: a
            # county's gateways start together, and would otherwise send every machine's sample at once.
            interval, phase = self._telemetry_interval_ms, self._telemetry_phase_ms
            st.next_telemetry_ms = -((phase - reading.at_ms) // interval) * interval + phase  # first slot >= now
        else:
            if reading.at_ms < last.at_ms:
                return out
            out.extend(self._advance(last, reading))
            if (reading.state, reading.reason) != (last.state, last.reason):
                out.append(self._change(reading, last.state, last.reason, reading.at_ms - st.since_ms))
                st.since_ms = reading.at_ms
                self._count_stop(reading, last)
        if reading.program is not None and (last is None or reading.program != last.program):
            out.append(self._program(reading, reading.program))
        if reading.at_ms >= st.next_telemetry_ms:
            out.append(self._telemetry(reading))
            interval, phase = self._telemetry_interval_ms, self._telemetry_phase_ms
            st.next_telemetry_ms = ((reading.at_ms - phase) // interval + 1) * interval + phase
        st.last = reading
        return out

    def close(self, at_ms: int) -> list[MachineMessage]:
        """On shutdown: the time up to ``at_ms`` as a partial window (the full one overwrites it later, from the
        checkpoint that now includes that time)."""
        st = self.state
        if st.last is None or at_ms <= st.window_start or at_ms < st.last.at_ms:
            return []
        until = replace(st.last, at_ms=at_ms)  # nothing changed since the last reading
        out = self._advance(st.last, until)
        st.last = until
        if at_ms > st.window_start:
            out.append(self._window(at_ms, until, partial=True))
        return out

    def _continuous(self, reading: Reading, last: Reading | None) -> Reading:
        st = self.state
        units, defects = reading.units_total + st.units_offset, reading.defects_total + st.defects_offset
        if last is not None and units < last.units_total:
            st.units_offset += last.units_total - units
            units = last.units_total
        if last is not None and defects < last.defects_total:
            st.defects_offset += last.defects_total - defects
            defects = last.defects_total
        if (units, defects) == (reading.units_total, reading.defects_total):
            return reading
        return replace(reading, units_total=units, defects_total=defects)

    def _count_stop(self, reading: Reading, last: Reading) -> None:
        st = self.state
        if reading.state is MachineState.OFFLINE:
            st.before_offline = (last.state, last.reason) if st.before_offline is None else st.before_offline
            return
        resumed = last.state is MachineState.OFFLINE and st.before_offline == (reading.state, reading.reason)
        st.before_offline = None
        if reading.state is MachineState.DOWN and reading.reason and not resumed:
            st.stops[reading.reason] = st.stops.get(reading.reason, 0) + 1

    def _add(self, state: MachineState, reason: str | None, ms: int) -> None:
        st = self.state
        st.state_ms[state] += ms
        if state is MachineState.DOWN and reason:
            st.down_ms[reason] = st.down_ms.get(reason, 0) + ms

    def _advance(self, last: Reading, reading: Reading) -> list[MachineMessage]:
        """Account the time from ``last`` to ``reading`` in the last state, closing every window passed."""
        st = self.state
        out: list[MachineMessage] = []
        cursor = last.at_ms
        while st.window_start + self._window_ms <= reading.at_ms:
            edge = st.window_start + self._window_ms
            self._add(last.state, last.reason, edge - cursor)
            # The counters at the edge: this reading's if it stands on the edge, else the last known.
            at_edge = reading if reading.at_ms == edge else last
            out.append(self._window(edge, at_edge, partial=False))
            st.window_start = edge
            st.units_at_window_start = at_edge.units_total
            st.defects_at_window_start = at_edge.defects_total
            st.state_ms, st.down_ms, st.stops = _zero_states(), {}, {}
            cursor = edge
        self._add(last.state, last.reason, reading.at_ms - cursor)
        return out

    def _window(self, ts: int, counters: Reading, *, partial: bool) -> StateWindow:
        st = self.state
        return StateWindow(
            **self._common(ts),  # type: ignore[arg-type]
            window_start=st.window_start,
            window_ms=self._window_ms,
            state_ms=dict(st.state_ms),
            down_ms_by_reason=dict(st.down_ms),
            stops_by_reason=dict(st.stops),
            units=counters.units_total - st.units_at_window_start,
            # Never more defects than units, whatever two independently restarted counters say.
            defects=min(
                counters.defects_total - st.defects_at_window_start, counters.units_total - st.units_at_window_start
            ),
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

    def _program(self, reading: Reading, program: str) -> ProgramChange:
        """The controller shows another program (or one for the first time): with what the current window has
        made up to now, so the window splits exactly here (the time up to ``reading`` is already accounted)."""
        st = self.state
        units = reading.units_total - st.units_at_window_start
        return ProgramChange(
            **self._common(reading.at_ms),  # type: ignore[arg-type]
            program=program,
            units_before=units,
            defects_before=min(reading.defects_total - st.defects_at_window_start, units),
            run_ms_before=st.state_ms[MachineState.RUNNING],
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
