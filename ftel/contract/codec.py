"""Bytes from the wire become contract models here, and only here.

A payload is parsed once, by one parser with limits (``parse_json``: size, nesting depth, no NaN or infinity),
and everything learned from it comes from that one parse: the message, or the reason it is refused together
with its sender when the sender can be told (so ingest can confirm a dead-lettered message and its gateway
stops sending it). A sender is bounded by the contract when it is read (``Sender``), so no later step (a
confirmation) can meet a value the contract does not allow.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from ftel.contract import limits
from ftel.contract.errors import ContractError
from ftel.contract.models import (
    Confirmation,
    GatewayStatus,
    Heartbeat,
    MachineMessage,
    MachineMeta,
    Message,
    ProgramChange,
    Rollup,
    StateChange,
    StateWindow,
    Telemetry,
)
from ftel.contract.topics import (
    GatewayKind,
    MachineKind,
    TopicAddress,
    check_id,
    confirm_topic,
    gateway_topic,
    machine_topic,
    parse_topic,
)

# Larger payloads are refused before parsing: the biggest honest message (a window) is well under 4 KiB.
MAX_PAYLOAD_BYTES = 64 * 1024
# JSON nested deeper than this is refused by the parser itself (pydantic-core's jiter, whose limit this is; a
# 201st level of array still passes): an honest payload nests three deep, and nothing after the parser
# recurses over what it holds.
MAX_DEPTH = 200
# A hostile key may be long: a reason names where it was wrong in at most this many characters.
MAX_WHERE_CHARS = 120

MODEL_BY_KIND: dict[str, type[BaseModel]] = {
    MachineKind.META: MachineMeta,
    MachineKind.EVENT: StateChange,
    MachineKind.WINDOW: StateWindow,
    MachineKind.TELEMETRY: Telemetry,
    MachineKind.JOB: ProgramChange,
    GatewayKind.STATUS: GatewayStatus,
    GatewayKind.HEARTBEAT: Heartbeat,
    GatewayKind.ROLLUP: Rollup,
}
_KIND_OF_MODEL: dict[type[BaseModel], str] = {model: kind for kind, model in MODEL_BY_KIND.items()}


def topic_of(message: Message) -> str:
    """The data topic a message is published on: the topic ``read_message`` reads it from."""
    kind = _KIND_OF_MODEL[type(message)]
    if isinstance(message, MachineMessage):
        return machine_topic(
            message.site, message.workshop, message.machine_type.value, message.machine_id, MachineKind(kind)
        )
    return gateway_topic(message.site, message.workshop, message.gateway_id, GatewayKind(kind))


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])[:MAX_WHERE_CHARS] or "payload"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse_json(payload: bytes) -> object:
    """The one JSON parser for what comes off the wire: bounded in size and depth, no lone surrogates; raises
    ContractError with the reason. NaN and infinities parse (as floats) so that the model refuses them by name:
    every float of the contract is finite, and no other field takes a float."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    try:
        return from_json(payload, allow_inf_nan=True)
    except ValueError as error:
        raise ContractError(f"Invalid JSON: {error}") from None


@dataclass(frozen=True, slots=True)
class Decoded:
    address: TopicAddress
    message: Message
    sender: Sender | None  # None for a last will (seq 0: the broker sent it, nothing to confirm)


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str
    sender: Sender | None  # who sent it, when that can be told from the payload within the contract's bounds
    stage: str = "validate"  # where it was refused: topic, parse, validate (or a consumer's own check)


def read_message(topic: str, payload: bytes) -> Decoded | Refused:
    """Judge one MQTT message (pure): the message, or why it does not follow the contract."""
    try:
        address = parse_topic(topic)
    except ContractError as error:
        return Refused(str(error), None, "topic")
    try:
        body = parse_json(payload)
    except ContractError as error:
        return Refused(str(error), None, "parse")
    sender = Sender.read(address, body)
    try:
        message = _validate(MODEL_BY_KIND[address.kind], body, f"invalid {address.kind} payload")
        _check_topic_matches(address, message)  # type: ignore[arg-type]
    except ContractError as error:
        return Refused(str(error), sender)
    return Decoded(address, message, sender)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class TimeLimits:
    """How far from its receipt a message's own time may be; outside, it is refused (a wrong clock, a replay
    from another era, a hostile stamp that would move an engine's clock)."""

    max_future_skew_ms: int
    max_age_ms: int

    def refusal(self, message: Message, sender: Sender | None, *, received_ms: int) -> Refused | None:
        if message.ts > received_ms + self.max_future_skew_ms:
            return Refused(
                f"timestamp {message.ts} is {(message.ts - received_ms) // 1000} s in the future "
                f"(limit {self.max_future_skew_ms // 1000} s): check the gateway's clock",
                sender,
                "time",
            )
        if message.ts < received_ms - self.max_age_ms:
            return Refused(
                f"timestamp {message.ts} is older than the {self.max_age_ms // 86_400_000}-day limit", sender, "time"
            )
        return None


def decode(topic: str, payload: bytes) -> tuple[TopicAddress, Message]:
    """Parse one MQTT message; raise ContractError with the reason when it does not follow the contract."""
    judged = read_message(topic, payload)
    if isinstance(judged, Refused):
        raise ContractError(judged.reason)
    return judged.address, judged.message


def _validate(model: type[BaseModel], body: object, what: str) -> BaseModel:
    if not isinstance(body, dict):
        raise ContractError(f"{what}: a JSON object is expected, not {type(body).__name__}")
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise ContractError(f"{what}: {_describe(error)}") from None


def _check_topic_matches(address: TopicAddress, message: Message) -> None:
    pairs: list[tuple[str, str, object]] = [
        ("site", address.site, message.site),
        ("workshop", address.workshop, message.workshop),
    ]
    if address.is_gateway:
        pairs.append(("gateway_id", address.machine_id, message.gateway_id))
    elif isinstance(message, MachineMessage):
        pairs.append(("machine_type", address.machine_type, message.machine_type))
        pairs.append(("machine_id", address.machine_id, message.machine_id))
    for name, in_topic, in_payload in pairs:
        if in_topic != in_payload:
            raise ContractError(f"{name} in topic ({in_topic!r}) differs from payload ({in_payload!r})")


def encode(message: Message | Confirmation) -> bytes:
    return message.model_dump_json(exclude_defaults=False).encode()


@dataclass(frozen=True, slots=True)
class Sender:
    """Which gateway sent a message, and its sequence number: enough to confirm it. Bounded by the contract
    (ids it allows, 1 ≤ seq ≤ int64): a confirmation built from senders always follows the contract too."""

    site: str
    workshop: str
    gateway_id: str
    seq: int

    def __post_init__(self) -> None:
        check_id(self.site, "site")
        check_id(self.workshop, "workshop")
        check_id(self.gateway_id, "gateway id")
        if type(self.seq) is not int or not 1 <= self.seq <= limits.INT64_MAX:
            raise ContractError(f"sequence number {self.seq!r} is outside 1 … {limits.INT64_MAX}")

    @classmethod
    def read(cls, address: TopicAddress, body: object) -> Sender | None:
        """The sender of a parsed payload that may not follow the contract (read leniently); None when it
        cannot be told within the contract's bounds: such a message is dead-lettered and not confirmed."""
        if not isinstance(body, dict):
            return None
        gateway_id, seq = body.get("gateway_id"), body.get("seq")
        if not isinstance(gateway_id, str) or type(seq) is not int:
            return None
        try:
            return cls(address.site, address.workshop, gateway_id, seq)
        except ContractError:
            return None


def decode_confirmation(topic: str, payload: bytes) -> Confirmation:
    confirmation = _validate(Confirmation, parse_json(payload), "invalid confirmation")
    assert isinstance(confirmation, Confirmation)
    expected = confirm_topic(confirmation.site, confirmation.workshop, confirmation.gateway_id)
    if topic != expected:
        raise ContractError(f"confirmation for {expected!r} arrived on {topic!r}")
    return confirmation
