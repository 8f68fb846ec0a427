"""One MQTT message → line protocol, or a rejection with its reason (pure). Either way the sender (gateway and
sequence number) is told when it can be read, so the message is confirmed and its gateway lets go of it."""

from __future__ import annotations

from dataclasses import dataclass

from ftel.contract.codec import Sender, decode, sender_of
from ftel.contract.errors import ContractError
from ftel.storage.lineproto import LineProtocolError, encode_point
from ftel.storage.points import to_points


@dataclass(frozen=True, slots=True)
class TimeLimits:
    max_future_skew_ms: int
    max_age_ms: int


@dataclass(frozen=True, slots=True)
class Accepted:
    lines: tuple[str, ...]
    sender: Sender | None  # None for a last will (the broker sent it; nothing to confirm)
    ts: int  # the message's own time (its machine's, or its gateway's): latency is measured from it


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    sender: Sender | None


def route(topic: str, payload: bytes, *, received_ms: int, limits: TimeLimits) -> Accepted | Rejected:
    try:
        address, message = decode(topic, payload)
        if message.ts > received_ms + limits.max_future_skew_ms:
            return Rejected(
                f"timestamp {message.ts} is {(message.ts - received_ms) // 1000} s in the future "
                f"(limit {limits.max_future_skew_ms // 1000} s): check the gateway's clock",
                sender_of(topic, payload),
            )
        if message.ts < received_ms - limits.max_age_ms:
            return Rejected(
                f"timestamp {message.ts} is older than the {limits.max_age_ms // 86_400_000}-day limit",
                sender_of(topic, payload),
            )
        lines = tuple(encode_point(p) for p in to_points(message))
    except (ContractError, LineProtocolError) as error:
        return Rejected(str(error), sender_of(topic, payload))
    sender = Sender(address.site, address.workshop, message.gateway_id, message.seq) if message.seq else None
    return Accepted(lines, sender, message.ts)
