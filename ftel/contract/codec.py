"""Bytes from the wire become contract models here, and only here."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from ftel.contract.errors import ContractError
from ftel.contract.models import (
    Confirmation,
    GatewayStatus,
    Heartbeat,
    MachineMeta,
    Message,
    Rollup,
    StateChange,
    StateWindow,
    Telemetry,
)
from ftel.contract.topics import CONFIRM_PREFIX, GatewayKind, MachineKind, TopicAddress, check_id, parse_topic

# Larger payloads are refused before parsing: the biggest honest message (a window) is well under 4 KiB.
MAX_PAYLOAD_BYTES = 64 * 1024

MODEL_BY_KIND: dict[str, type[BaseModel]] = {
    MachineKind.META: MachineMeta,
    MachineKind.EVENT: StateChange,
    MachineKind.WINDOW: StateWindow,
    MachineKind.TELEMETRY: Telemetry,
    GatewayKind.STATUS: GatewayStatus,
    GatewayKind.HEARTBEAT: Heartbeat,
    GatewayKind.ROLLUP: Rollup,
}


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def decode(topic: str, payload: bytes) -> tuple[TopicAddress, Message]:
    """Parse one MQTT message; raise ContractError with the reason when it does not follow the contract."""
    address = parse_topic(topic)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    model = MODEL_BY_KIND[address.kind]
    try:
        message = model.model_validate_json(payload)
    except ValidationError as error:
        raise ContractError(f"invalid {address.kind} payload: {_describe(error)}") from None
    _check_topic_matches(address, message)  # type: ignore[arg-type]
    return address, message  # type: ignore[return-value]


def _check_topic_matches(address: TopicAddress, message: Message) -> None:
    pairs: list[tuple[str, str, object]] = [
        ("site", address.site, message.site),
        ("workshop", address.workshop, message.workshop),
    ]
    if address.is_gateway:
        pairs.append(("gateway_id", address.machine_id, message.gateway_id))
    elif isinstance(message, MachineMeta | StateChange | StateWindow | Telemetry):
        pairs.append(("machine_type", address.machine_type, message.machine_type))
        pairs.append(("machine_id", address.machine_id, message.machine_id))
    for name, in_topic, in_payload in pairs:
        if in_topic != in_payload:
            raise ContractError(f"{name} in topic ({in_topic!r}) differs from payload ({in_payload!r})")


def encode(message: Message | Confirmation) -> bytes:
    return message.model_dump_json(exclude_defaults=False).encode()


@dataclass(frozen=True, slots=True)
class Sender:
    """Which gateway sent a message, and its sequence number: enough to confirm it."""

    site: str
    workshop: str
    gateway_id: str
    seq: int


def sender_of(topic: str, payload: bytes) -> Sender | None:
    """The sender of a message that may not follow the contract (read leniently), so ingest can confirm a
    dead-lettered message too and its gateway stops sending it; None when it cannot be told."""
    try:
        address = parse_topic(topic)
        body = json.loads(payload[:MAX_PAYLOAD_BYTES])
        gateway_id, seq = body["gateway_id"], body["seq"]
        if type(seq) is not int or seq <= 0 or not isinstance(gateway_id, str):
            return None
        check_id(gateway_id, "gateway id")
    except (ContractError, ValueError, KeyError, TypeError):
        return None
    return Sender(address.site, address.workshop, gateway_id, seq)


def decode_confirmation(topic: str, payload: bytes) -> Confirmation:
    try:
        confirmation = Confirmation.model_validate_json(payload)
    except ValidationError as error:
        raise ContractError(f"invalid confirmation: {_describe(error)}") from None
    expected = f"{CONFIRM_PREFIX}/{confirmation.site}/{confirmation.workshop}/{confirmation.gateway_id}"
    if topic != expected:
        raise ContractError(f"confirmation for {expected!r} arrived on {topic!r}")
    return confirmation
