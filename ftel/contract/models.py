"""Payload models of the wire contract (version 1). Every payload is JSON; times are integer epoch milliseconds.

Models are frozen and strict: a string where a number belongs, a boolean where a number belongs, NaN,
infinity, an unknown key, a value beyond its bound (ftel/contract/limits.py) or a reason code that the
machine type does not have is rejected with a reason.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from ftel.contract import limits
from ftel.contract.states import DOWN_REASONS, STATE_ORDER, MachineState, MachineType
from ftel.contract.topics import CONTRACT_VERSION, ID_PATTERN

Id = Annotated[str, Field(pattern=ID_PATTERN)]
# A payload is parsed once (ftel/contract/codec.py) and then validated as Python data, where a strict enum or
# tuple would want the Python object itself: these take the JSON value (a state's name, an array of two), and
# only that; everything inside them stays strict.
MachineTypeName = Annotated[MachineType, Strict(False)]
StateName = Annotated[MachineState, Strict(False)]
EpochMs = Annotated[int, Field(ge=limits.EPOCH_MIN_MS, lt=limits.EPOCH_MAX_MS)]
Millis = Annotated[int, Field(ge=0, le=limits.MAX_DURATION_MS)]
Count = Annotated[int, Field(ge=0, le=limits.INT64_MAX)]
Celsius = Annotated[float, Field(ge=limits.TEMPERATURE_MIN_C, le=limits.TEMPERATURE_MAX_C, allow_inf_nan=False)]
Speed = Annotated[float, Field(ge=0, le=limits.MAX_SPEED, allow_inf_nan=False)]
# Free text (model names, line names) may hold anything printable; InfluxDB escaping takes care of it.
Text = Annotated[str, Field(min_length=1, max_length=limits.MAX_TEXT_CHARS)]
SeqRange = Annotated[tuple[Count, Count], Strict(False)]


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    v: int = CONTRACT_VERSION
    site: Id
    workshop: Id
    gateway_id: Id
    # Per gateway, continuous across restarts (kept with the gateway's spool); 0 only on a last will.
    seq: Count
    ts: EpochMs

    @field_validator("v")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != CONTRACT_VERSION:
            raise ValueError(f"contract version {v} is not spoken here (this side speaks {CONTRACT_VERSION})")
        return v


class _MachinePayload(_Payload):
    machine_type: MachineTypeName
    machine_id: Id


def _check_reason(machine_type: MachineType, state: MachineState, reason: str | None) -> None:
    if state is MachineState.DOWN:
        allowed = DOWN_REASONS[machine_type]
        if reason not in allowed:
            raise ValueError(
                f"reason {reason!r} is not a {machine_type.value} reason code (one of {', '.join(allowed)})"
            )
    elif reason is not None:
        raise ValueError(f"only DOWN carries a reason code, not {state.value}")


class MachineNow(BaseModel):
    """A machine's state as its gateway knows it now: in ``state`` (with ``reason``) since ``since_ms``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    state: StateName
    reason: str | None = None
    since_ms: EpochMs


class GatewayStatus(_Payload):
    """Birth (online=true) and death (online=false); retained on one topic.

    A birth is sent at every (re)connect and re-states each machine's state (``states``), stamped after the
    last thing the gateway sent, so "state now" is true again whatever was lost or replayed before it. A death
    is either the gateway's own (it stops: ``ts`` is its last moment) or its last will (``will``: registered at
    connect, published by the broker when the gateway vanishes; its ``ts`` is the connect time, so the moment
    of death is judged by whoever saw the gateway's last message, see ftel/contract/liveness.py).
    """

    online: bool
    boot_id: EpochMs
    # machine id -> machine type: lets a death mark each of the gateway's machines OFFLINE.
    machines: Annotated[dict[Id, MachineTypeName], Field(max_length=limits.MAX_MACHINES_PER_GATEWAY)] = {}
    states: Annotated[dict[Id, MachineNow], Field(max_length=limits.MAX_MACHINES_PER_GATEWAY)] = {}
    will: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.online and self.will:
            raise ValueError("a last will announces a death (online must be false)")
        if not self.online and self.states:
            raise ValueError("only a birth re-states machine states")
        for machine_id, now in self.states.items():
            machine_type = self.machines.get(machine_id)
            if machine_type is None:
                raise ValueError(f"states name machine {machine_id!r}, which machines does not list")
            _check_reason(machine_type, now.state, now.reason)
            if now.since_ms > self.ts:
                raise ValueError(f"{machine_id} is in its state since {now.since_ms}, after the birth at {self.ts}")
        return self


class Heartbeat(_Payload):
    boot_id: EpochMs
    uptime_ms: Millis
    machines: Annotated[int, Field(ge=0, le=limits.MAX_MACHINES_PER_GATEWAY)]
    spool_depth: Count
    spool_dropped: Count
    # What controllers said that the gateway refused, since it started: "<machine id>/<why>" -> count, e.g.
    # "CARD-003/out_of_range:temperature", "KNIT-007/unknown_fault_code".
    refused: Annotated[dict[str, Count], Field(max_length=limits.MAX_MACHINES_PER_GATEWAY * 8)] = {}


class MachineMeta(_MachinePayload):
    """Retained: what the machine is."""

    model: Text
    line: Text
    rated_speed: Annotated[float, Field(gt=0, le=limits.MAX_SPEED, allow_inf_nan=False)]
    speed_unit: Text
    service_interval_h: Annotated[float, Field(gt=0, le=limits.MAX_SERVICE_INTERVAL_H, allow_inf_nan=False)]


class StateChange(_MachinePayload):
    """The machine entered ``state`` at ``ts``; it had been in ``prev_state`` for exactly ``prev_duration_ms``."""

    state: StateName
    reason: str | None = None
    prev_state: StateName
    prev_reason: str | None = None
    prev_duration_ms: Millis

    @model_validator(mode="after")
    def _reasons_fit_machine_type(self) -> Self:
        _check_reason(self.machine_type, self.state, self.reason)
        _check_reason(self.machine_type, self.prev_state, self.prev_reason)
        return self


class StateWindow(_MachinePayload):
    """Milliseconds in each state within [window_start, window_start + window_ms), split exactly at the edges.

    ``ts`` is when the gateway sent the window: its end, or later by the gateway's publishing phase (less than a
    window: a county's gateways do not all send at the same instant, docs/scale.md); for a partial window
    (gateway stopping) the moment it stopped. The point is stamped at ``window_start`` either way. A partial
    window is later overwritten by the full one: both land on the same point.
    """

    window_start: EpochMs
    window_ms: Annotated[int, Field(ge=limits.MIN_WINDOW_MS, le=limits.MAX_WINDOW_MS)]
    state_ms: dict[StateName, Millis]
    down_ms_by_reason: dict[str, Millis] = {}
    stops_by_reason: dict[str, Count] = {}
    units: Count
    defects: Count
    partial: bool = False

    @model_validator(mode="after")
    def _adds_up(self) -> Self:
        if not self.window_start < self.ts < self.window_start + 2 * self.window_ms:
            raise ValueError(
                f"sent at {self.ts}, outside the window and the phase after it "
                f"({self.window_start}, {self.window_start + 2 * self.window_ms})"
            )
        _check_window_sums(self, capacity_ms=self.window_ms)
        return self


def _check_window_sums(window: StateWindow | Rollup, *, capacity_ms: int) -> None:
    """What every window (one machine's, or a roll-up of many holding ``capacity_ms`` of machine time) must
    satisfy: all states present, no more time than there is, downtime by reason adding up to DOWN, reasons of
    this machine type, believable counts."""
    missing = [s.value for s in STATE_ORDER if s not in window.state_ms]
    if missing:
        raise ValueError(f"state_ms lacks {', '.join(missing)}")
    total = sum(window.state_ms.values())
    if total > capacity_ms:
        raise ValueError(f"state_ms adds up to {total} ms, more than the {capacity_ms} ms there are")
    allowed = DOWN_REASONS[window.machine_type]
    for reason in (*window.down_ms_by_reason, *window.stops_by_reason):
        if reason not in allowed:
            raise ValueError(f"reason {reason!r} is not a {window.machine_type.value} reason code")
    if sum(window.down_ms_by_reason.values()) != window.state_ms[MachineState.DOWN]:
        raise ValueError("down_ms_by_reason does not add up to state_ms.DOWN")
    machines = capacity_ms // window.window_ms
    stops = sum(window.stops_by_reason.values())
    if stops > (window.window_ms // 1000 * limits.STOPS_PER_WINDOW_SECOND + 1) * machines:
        raise ValueError(f"{stops} stops cannot happen in a {window.window_ms} ms window")
    if window.units > capacity_ms * limits.UNITS_PER_WINDOW_MS:
        raise ValueError(f"{window.units} units cannot be made in a {window.window_ms} ms window")
    if window.defects > window.units:
        raise ValueError(f"defects ({window.defects}) exceed units ({window.units})")


class Rollup(_Payload):
    """The sum of the windows of one workshop's machines of one type, over ``window_ms`` (the gateway's window
    for the per-minute roll-up, an hour for the hourly one), or with ``machine_id`` of one machine's windows
    over an hour. Made by the gateway from the very windows it sent, so a roll-up always equals the sum of its
    raw windows; boards read roll-ups as the range or the fleet grows. A partial roll-up (gateway stopping) is
    overwritten by the full one, like a partial window."""

    machine_type: MachineTypeName
    machine_id: Id | None = None
    window_start: EpochMs
    window_ms: Annotated[int, Field(ge=limits.MIN_WINDOW_MS, le=limits.MAX_WINDOW_MS)]
    machines: Annotated[int, Field(ge=1, le=limits.MAX_MACHINES_PER_GATEWAY)]
    state_ms: dict[StateName, Count]
    down_ms_by_reason: dict[str, Count] = {}
    stops_by_reason: dict[str, Count] = {}
    units: Count
    defects: Count
    partial: bool = False

    @model_validator(mode="after")
    def _adds_up(self) -> Self:
        _check_window_sums(self, capacity_ms=self.window_ms * self.machines)
        return self


class Telemetry(_MachinePayload):
    state: StateName
    speed: Speed
    temperature: Celsius
    units_total: Count
    defects_total: Count
    run_ms_since_service: Millis


class ProgramChange(_MachinePayload):
    """The machine's controller shows ``program`` (a program number or name) from ``ts`` on: the style it knits
    (docs/orders.md). ``*_before`` is what the machine's current window (the one holding ``ts``) had made before
    ``ts``, so a window is split exactly at the change. Sent at the first reading of a program and at each
    change; a gateway that reads no program never sends it."""

    program: Text
    units_before: Count
    defects_before: Count
    run_ms_before: Annotated[int, Field(ge=0, le=limits.MAX_WINDOW_MS)]

    @model_validator(mode="after")
    def _believable(self) -> Self:
        if self.defects_before > self.units_before:
            raise ValueError(f"defects_before ({self.defects_before}) exceed units_before ({self.units_before})")
        return self


class Confirmation(BaseModel):
    """Ingest → one gateway: these sequence numbers of yours are stored (or dead-lettered with a reason).
    Sent after the write and before the MQTT acknowledgement; the gateway lets go of them only then."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    v: int = CONTRACT_VERSION
    site: Id
    workshop: Id
    gateway_id: Id
    worker: Id
    # Inclusive [first, last] runs of sequence numbers.
    ranges: Annotated[list[SeqRange], Field(min_length=1, max_length=limits.MAX_CONFIRM_RANGES)]

    @model_validator(mode="after")
    def _ordered_runs(self) -> Self:
        if any(first > last for first, last in self.ranges):
            raise ValueError("a range runs backwards")
        return self

    def seqs(self) -> list[int]:
        return [seq for first, last in self.ranges for seq in range(first, last + 1)]


MachineMessage = MachineMeta | StateChange | StateWindow | Telemetry | ProgramChange
GatewayMessage = GatewayStatus | Heartbeat | Rollup
Message = MachineMessage | GatewayMessage
