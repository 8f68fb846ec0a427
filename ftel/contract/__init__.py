"""The wire contract shared by gateway, ingest, simulators, alerts and dashboards (version 1)."""

from ftel.contract.codec import MAX_PAYLOAD_BYTES, decode, encode
from ftel.contract.errors import ContractError
from ftel.contract.models import (
    GatewayStatus,
    Heartbeat,
    MachineMeta,
    Message,
    StateChange,
    StateWindow,
    Telemetry,
)
from ftel.contract.states import DOWN_REASONS, STATE_ORDER, MachineState, MachineType, state_field
from ftel.contract.topics import (
    CONTRACT_VERSION,
    GatewayKind,
    MachineKind,
    TopicAddress,
    data_filter,
    gateway_topic,
    machine_topic,
    parse_topic,
    shared,
)

__all__ = [
    "CONTRACT_VERSION",
    "DOWN_REASONS",
    "MAX_PAYLOAD_BYTES",
    "STATE_ORDER",
    "ContractError",
    "GatewayKind",
    "GatewayStatus",
    "Heartbeat",
    "MachineKind",
    "MachineMeta",
    "MachineState",
    "MachineType",
    "Message",
    "StateChange",
    "StateWindow",
    "Telemetry",
    "TopicAddress",
    "data_filter",
    "decode",
    "encode",
    "gateway_topic",
    "machine_topic",
    "parse_topic",
    "shared",
    "state_field",
]
