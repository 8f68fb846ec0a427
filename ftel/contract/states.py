"""Machine types, the machine state model and the reason codes each machine type reports."""

from __future__ import annotations

from enum import StrEnum


class MachineType(StrEnum):
    CARDING = "carding"
    SPINNING = "spinning"
    KNITTING = "knitting"


class MachineState(StrEnum):
    RUNNING = "RUNNING"
    IDLE = "IDLE"
    SETUP = "SETUP"
    DOWN = "DOWN"
    MAINTENANCE = "MAINTENANCE"
    OFFLINE = "OFFLINE"


# Fixed order used for field names, colours and tables everywhere.
STATE_ORDER: tuple[MachineState, ...] = tuple(MachineState)

# What each state counts as (ARCHITECTURE.md, machine state model).
PLANNED_STOP_STATES = frozenset({MachineState.SETUP, MachineState.MAINTENANCE})

# One colour per state, used by boards and the shift report alike.
STATE_COLOURS: dict[MachineState, str] = {
    MachineState.RUNNING: "#2e9e44",
    MachineState.IDLE: "#e0b400",
    MachineState.SETUP: "#3b7dd8",
    MachineState.DOWN: "#d62f2f",
    MachineState.MAINTENANCE: "#8c54c9",
    MachineState.OFFLINE: "#8e8e8e",
}

# A controller's fault code that the gateway's table does not know: the machine is DOWN all the same.
UNKNOWN_FAULT = "unknown_fault"

DOWN_REASONS: dict[MachineType, tuple[str, ...]] = {
    MachineType.KNITTING: (
        "yarn_break",
        "needle_break",
        "fabric_drop_off",
        "yarn_carrier_fault",
        "pattern_error",
        UNKNOWN_FAULT,
    ),
    MachineType.CARDING: ("fibre_choke", "feed_empty", "clothing_wear", "motor_overload", UNKNOWN_FAULT),
    MachineType.SPINNING: ("ends_down", "roving_out", "drafting_fault", UNKNOWN_FAULT),
}

REASON_LABELS: dict[str, str] = {
    "yarn_break": "Yarn break",
    "needle_break": "Needle break",
    "fabric_drop_off": "Fabric drop-off",
    "yarn_carrier_fault": "Yarn carrier fault",
    "pattern_error": "Pattern / program error",
    "fibre_choke": "Fibre choke / lap-up",
    "feed_empty": "Feed empty",
    "clothing_wear": "Card clothing wear",
    "motor_overload": "Motor overload",
    "ends_down": "Ends down",
    "roving_out": "Roving out",
    "drafting_fault": "Drafting fault",
    UNKNOWN_FAULT: "Unknown fault code",
}

ALL_REASONS: tuple[str, ...] = tuple(dict.fromkeys(r for reasons in DOWN_REASONS.values() for r in reasons))

MACHINE_TYPE_LABELS: dict[MachineType, str] = {
    MachineType.CARDING: "Carding machine",
    MachineType.SPINNING: "Spinning frame",
    MachineType.KNITTING: "Computerized flat knitting machine",
}


_STATE_FIELDS: dict[MachineState, str] = {state: f"{state.value.lower()}_ms" for state in MachineState}


def state_field(state: MachineState) -> str:
    """The InfluxDB field and JSON key holding milliseconds spent in ``state``."""
    return _STATE_FIELDS[state]
