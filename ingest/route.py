"""One MQTT message → points, or a rejection with its reason (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ftel.contract.codec import decode
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
    ts: int


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


def route(topic: str, payload: bytes, *, received_ms: int, limits: TimeLimits) -> Accepted | Rejected:
    try:
        _, message = decode(topic, payload)
        if message.ts > received_ms + limits.max_future_skew_ms:
            return Rejected(
                f"timestamp {message.ts} is {(message.ts - received_ms) // 1000} s in the future "
                f"(limit {limits.max_future_skew_ms // 1000} s): check the gateway's clock"
            )
        if message.ts < received_ms - limits.max_age_ms:
            return Rejected(f"timestamp {message.ts} is older than the {limits.max_age_ms // 86_400_000}-day limit")
        lines = tuple(encode_point(p) for p in to_points(message, received_ms=received_ms))
    except (ContractError, LineProtocolError) as error:
        return Rejected(str(error))
    return Accepted(lines, message.ts)


def dead_letter_body(
    *, worker: str, topic: str, payload: bytes, reason: str, received_ms: int, keep_bytes: int
) -> bytes:
    """What goes to the dead-letter topic: enough to see what was wrong and with which message."""
    return json.dumps(
        {
            "worker": worker,
            "topic": topic,
            "reason": reason,
            "size": len(payload),
            "payload": payload[:keep_bytes].decode("utf-8", errors="replace"),
            "received_ms": received_ms,
        },
        ensure_ascii=False,
    ).encode()
