"""One MQTT message → line protocol, or a rejection with its reason (pure). Either way the sender (gateway and
sequence number) is told when it can be read within the contract's bounds, so the message is confirmed and its
gateway lets go of it."""

from __future__ import annotations

from dataclasses import dataclass

from ftel.contract.codec import Refused, Sender, TimeLimits, read_message
from ftel.contract.models import Message
from ftel.storage.lineproto import LineProtocolError, encode_point
from ftel.storage.points import to_points

__all__ = ["Accepted", "Rejected", "TimeLimits", "route"]


@dataclass(frozen=True, slots=True)
class Accepted:
    lines: tuple[str, ...]
    sender: Sender | None  # None for a last will (the broker sent it; nothing to confirm)
    ts: int  # the message's own time (its machine's, or its gateway's): latency is measured from it
    message: Message  # what it said (ingest/deaths.py keeps what it stored of each gateway)


Rejected = Refused


def route(topic: str, payload: bytes, *, received_ms: int, limits: TimeLimits) -> Accepted | Rejected:
    judged = read_message(topic, payload)
    if isinstance(judged, Refused):
        return judged
    message, sender = judged.message, judged.sender
    refused = limits.refusal(message, sender, received_ms=received_ms)
    if refused is not None:
        return refused
    try:
        lines = tuple(encode_point(p) for p in to_points(message))
    except LineProtocolError as error:
        return Rejected(str(error), sender, "line")
    return Accepted(lines, sender, message.ts, message)
