"""The plant file (YAML): the site, its workshops (each with the gateway that serves it), lines and machines, and
the default plant (Qinghe's two workshops). The base owns it: the stack and `ftel auth` read the gateways a plant
has from it, the simulator simulates it (a plant file may also carry a simulation's seed and the faults it
injects, which only the simulator reads). The simulator's generator of N machines is simulators/plant.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ftel.contract.states import MachineState, MachineType
from ftel.contract.topics import ID_PATTERN

Id = Annotated[str, Field(pattern=ID_PATTERN)]

# Nameplate figures per machine type: (model, rated speed, unit of speed, service interval in run hours).
NAMEPLATES: dict[MachineType, tuple[str, float, str, float]] = {
    MachineType.CARDING: ("FA201B cashmere card", 30.0, "m/min", 160.0),
    MachineType.SPINNING: ("FA506 ring frame", 12000.0, "rpm", 240.0),
    MachineType.KNITTING: ("Cixing GE2-52C 12G", 1.0, "m/s", 200.0),
}


class MachineSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Id
    type: MachineType
    line: str = "line-1"
    model: str = ""
    rated_speed: float = 0.0
    speed_unit: str = ""
    service_interval_h: float = 0.0

    @model_validator(mode="after")
    def _nameplate_defaults(self) -> MachineSpec:
        model, speed, unit, service = NAMEPLATES[self.type]
        for name, value in (("model", model), ("rated_speed", speed), ("speed_unit", unit)):
            if not getattr(self, name):
                object.__setattr__(self, name, value)
        if not self.service_interval_h:
            object.__setattr__(self, "service_interval_h", service)
        return self


class Workshop(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Id
    name: str
    gateway_id: Id
    machines: tuple[MachineSpec, ...]


class InjectedState(BaseModel):
    """A state forced on a machine, in seconds after the simulation start: an injected fault for tests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    machine_id: Id
    at_s: int = Field(ge=0)
    duration_s: int = Field(gt=0)
    state: MachineState = MachineState.DOWN
    reason: str | None = None


class InjectedAnomaly(BaseModel):
    """Telemetry disturbed for a while: overheating (temperature_rise_c) or running slow (speed_factor)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    machine_id: Id
    at_s: int = Field(ge=0)
    duration_s: int = Field(gt=0)
    temperature_rise_c: float = 0.0
    speed_factor: float = 1.0


class InjectedServiceOverdue(BaseModel):
    """A machine that starts ``run_hours`` past its last maintenance and gets no planned maintenance (it is
    overdue until an injected MAINTENANCE state services it): an injected fault for tests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    machine_id: Id
    run_hours: float = Field(gt=0)


class Plant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    site: Id
    seed: int = 2026
    workshops: tuple[Workshop, ...]
    injected_states: tuple[InjectedState, ...] = ()
    injected_anomalies: tuple[InjectedAnomaly, ...] = ()
    injected_service_overdue: tuple[InjectedServiceOverdue, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> Plant:
        ids = [m.id for w in self.workshops for m in w.machines]
        duplicates = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
        if duplicates:
            raise ValueError(f"machine ids must be unique in a plant; repeated: {', '.join(duplicates[:5])}")
        workshop_ids = [w.id for w in self.workshops]
        if len(set(workshop_ids)) != len(workshop_ids):
            raise ValueError("workshop ids must be unique")
        return self

    def workshop(self, workshop_id: str) -> Workshop:
        for workshop in self.workshops:
            if workshop.id == workshop_id:
                return workshop
        known = ", ".join(w.id for w in self.workshops)
        raise KeyError(f"no workshop {workshop_id!r} in the plant (known: {known})")

    @property
    def machine_count(self) -> int:
        return sum(len(w.machines) for w in self.workshops)


# libyaml's parser when PyYAML has it (the same safe subset): a county's plant file is tens of thousands of
# machines, read by every gateway process at its start, and the pure-Python parser took seconds per 10,000.
_PLANT_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_plant(path: Path) -> Plant:
    return Plant.model_validate(yaml.load(path.read_text(), Loader=_PLANT_LOADER))


def dump_plant(plant: Plant) -> str:
    return yaml.safe_dump(plant.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def numbered_machines(prefix: str, machine_type: MachineType, count: int, per_line: int) -> tuple[MachineSpec, ...]:
    """``count`` machines ``PREFIX-001`` … of one type, ``per_line`` to a line."""
    return tuple(
        MachineSpec(id=f"{prefix}-{i + 1:03d}", type=machine_type, line=f"line-{i // per_line + 1}")
        for i in range(count)
    )


def default_plant(site: str = "qinghe") -> Plant:
    """Two workshops as found in Qinghe: yarn (carding feeding spinning) and flat knitting."""
    return Plant(
        site=site,
        workshops=(
            Workshop(
                id="yarn",
                name="Carding and spinning",
                gateway_id="gw-yarn",
                machines=(
                    *numbered_machines("CARD", MachineType.CARDING, 8, per_line=4),
                    *numbered_machines("SPIN", MachineType.SPINNING, 4, per_line=2),
                ),
            ),
            Workshop(
                id="knit",
                name="Flat knitting",
                gateway_id="gw-knit",
                machines=numbered_machines("KNIT", MachineType.KNITTING, 16, per_line=8),
            ),
        ),
    )
