"""Payload models of the wire contract (version 1). Every payload is JSON; times are integer epoch milliseconds.

Models are frozen and strict: a string where a number belongs, NaN, infinity, an unknown key or a reason code
that the machine type does not have is rejected with a reason.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ftel.contract.states import DOWN_REASONS, STATE_ORDER, MachineState, MachineType
from ftel.contract.topics import ID_PATTERN

Id = Annotated[str, Field(pattern=ID_PATTERN)]
EpochMs = Annotated[int, Field(ge=0)]
Millis = Annotated[int, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
# Free text (model names, line names) may hold anything printable; InfluxDB escaping takes care of it.
Text = Annotated[str, Field(min_length=1, max_length=200)]


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    v: Literal[1] = 1  # CONTRACT_VERSION
    site: Id
    workshop: Id
    gateway_id: Id
    seq: Count
    ts: EpochMs


class _MachinePayload(_Payload):
    machine_type: MachineType
    machine_id: Id


class GatewayStatus(_Payload):
    """Birth (online=true) and death (online=false, the MQTT last will); retained on one topic."""

    online: bool
    boot_id: EpochMs
    # machine id -> machine type: lets a death mark each of the gateway's machines OFFLINE.
    machines: dict[Id, MachineType] = {}


class Heartbeat(_Payload):
    boot_id: EpochMs
    uptime_ms: Millis
    machines: Count
    spool_depth: Count
    spool_dropped: Count


class MachineMeta(_MachinePayload):
    """Retained: what the machine is."""

    model: Text
    line: Text
    rated_speed: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    speed_unit: Text
    service_interval_h: Annotated[float, Field(gt=0, allow_inf_nan=False)]


def _check_reason(machine_type: MachineType, state: MachineState, reason: str | None) -> None:
    if state is MachineState.DOWN:
        allowed = DOWN_REASONS[machine_type]
        if reason not in allowed:
            raise ValueError(
                f"reason {reason!r} is not a {machine_type.value} reason code (one of {', '.join(allowed)})"
            )
    elif reason is not None:
        raise ValueError(f"only DOWN carries a reason code, not {state.value}")


class StateChange(_MachinePayload):
    """The machine entered ``state`` at ``ts``; it had been in ``prev_state`` for exactly ``prev_duration_ms``."""

    state: MachineState
    reason: str | None = None
    prev_state: MachineState
    prev_reason: str | None = None
    prev_duration_ms: Millis

    @model_validator(mode="after")
    def _reasons_fit_machine_type(self) -> Self:
        _check_reason(self.machine_type, self.state, self.reason)
        _check_reason(self.machine_type, self.prev_state, self.prev_reason)
        return self


class StateWindow(_MachinePayload):
    """Milliseconds in each state within [window_start, window_start + window_ms), split exactly at the edges.

    ``ts`` is when the gateway closed the window. A partial window (gateway stopping) is later overwritten by
    the full one, because both land on the same InfluxDB point.
    """

    window_start: EpochMs
    window_ms: Annotated[int, Field(gt=0)]
    state_ms: dict[MachineState, Millis]
    down_ms_by_reason: dict[str, Millis] = {}
    stops_by_reason: dict[str, Count] = {}
    units: Count
    defects: Count
    partial: bool = False

    @model_validator(mode="after")
    def _adds_up(self) -> Self:
        missing = [s.value for s in STATE_ORDER if s not in self.state_ms]
        if missing:
            raise ValueError(f"state_ms lacks {', '.join(missing)}")
        total = sum(self.state_ms.values())
        if total > self.window_ms:
            raise ValueError(f"state_ms adds up to {total} ms, more than the {self.window_ms} ms window")
        allowed = DOWN_REASONS[self.machine_type]
        for reason in (*self.down_ms_by_reason, *self.stops_by_reason):
            if reason not in allowed:
                raise ValueError(f"reason {reason!r} is not a {self.machine_type.value} reason code")
        if sum(self.down_ms_by_reason.values()) != self.state_ms[MachineState.DOWN]:
            raise ValueError("down_ms_by_reason does not add up to state_ms.DOWN")
        if self.defects > self.units:
            raise ValueError(f"defects ({self.defects}) exceed units ({self.units})")
        return self


class Telemetry(_MachinePayload):
    state: MachineState
    speed: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    temperature: Finite
    units_total: Count
    defects_total: Count
    run_ms_since_service: Millis


MachineMessage = MachineMeta | StateChange | StateWindow | Telemetry
GatewayMessage = GatewayStatus | Heartbeat
Message = MachineMessage | GatewayMessage
