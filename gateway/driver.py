"""The driver interface between the gateway and equipment: simulated (simulators/), Modbus TCP and OPC UA
(gateway/drivers/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ftel.contract.states import MachineState, MachineType


@dataclass(frozen=True, slots=True)
class Reading:
    """What the machine's controller reports at ``at_ms``."""

    at_ms: int
    state: MachineState
    reason: str | None
    units_total: int
    defects_total: int
    speed: float
    temperature: float
    run_ms_since_service: int
    # The program the controller runs (a number or a name, as text), where the model reads one (docs/orders.md).
    program: str | None = None


@dataclass(frozen=True, slots=True)
class MachineInfo:
    machine_id: str
    machine_type: MachineType
    model: str
    line: str
    rated_speed: float
    speed_unit: str
    service_interval_h: float


class MachineDriver(Protocol):
    """A poll driver returns one reading at ``at_ms``; a push driver also returns a reading at each state
    change since the previous call, with its exact time. Readings come in time order, the last at ``at_ms``."""

    @property
    def info(self) -> MachineInfo: ...

    @property
    def resume_key(self) -> str:
        """What identifies the machine behind this driver beyond its id (an address, a simulation): a saved
        checkpoint is resumed only by a driver with the same key."""
        ...

    def read(self, at_ms: int) -> list[Reading]: ...

    def resume(self, at_ms: int) -> bool:
        """The gateway restarts from a checkpoint taken at ``at_ms``: the next read reports from there. True when
        the driver can report what happened since then exactly (a controller's event log, the simulator); False
        when it only knows the present, and the gateway counts the gap as OFFLINE."""
        ...


@runtime_checkable
class CountsRefusals(Protocol):
    """Optional for a driver: what its controller said that was refused, by reason (``out_of_range:temperature``,
    ``unknown_fault_code``, ``counter_jump:units``), counted since the driver started. A heartbeat may carry it."""

    def refusals(self) -> dict[str, int]: ...


@runtime_checkable
class KnowsNextChange(Protocol):
    """Optional for a push driver that knows when its machine will next change (the simulator does): the gateway
    then reads it at that time and at window and telemetry edges only, so between its changes a machine costs
    nothing, and a county's simulated fleet can run on one small machine."""

    def next_change_ms(self) -> int: ...
