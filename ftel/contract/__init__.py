"""The wire contract shared by gateway, ingest, simulators, alerts and dashboards (version 1)."""

from ftel.contract.codec import MAX_PAYLOAD_BYTES, Sender, decode, decode_confirmation, encode, sender_of
from ftel.contract.errors import ContractError
from ftel.contract.models import (
    Confirmation,
    GatewayStatus,
    Heartbeat,
    MachineMeta,
    MachineNow,
    Message,
    Rollup,
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
    confirm_topic,
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
    "Confirmation",
    "ContractError",
    "GatewayKind",
    "GatewayStatus",
    "Heartbeat",
    "MachineKind",
    "MachineMeta",
    "MachineNow",
    "MachineState",
    "MachineType",
    "Message",
    "Rollup",
    "Sender",
    "StateChange",
    "StateWindow",
    "Telemetry",
    "TopicAddress",
    "confirm_topic",
    "data_filter",
    "decode",
    "decode_confirmation",
    "encode",
    "gateway_topic",
    "machine_topic",
    "parse_topic",
    "sender_of",
    "shared",
    "state_field",
]
