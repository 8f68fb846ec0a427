"""One message's boundary, for every consumer of the data topics (ingest, alerts).

Whatever goes wrong while one message is handled (decoding, validation, routing, the line, the batch, the
dead letter, the sender's confirmation, the alert engine) is that message's fault: the handler's result is a
``Fault`` naming the stage and the error, the consumer dead-letters the message with it and acknowledges it,
and goes on with the next. Only a ``MachineryError`` (the broker, the database, the disk: not one message)
passes the boundary, and the consumer then stops or waits without acknowledging what it has not stored.
Kafka Connect's ``errors.tolerance=all`` with a dead-letter queue is the model; docs/delivery.md says more.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ftel.errors import MachineryError

log = logging.getLogger(__name__)
T = TypeVar("T")
# A fault's text goes into a dead letter: an error that repeats a hostile payload is cut to this.
MAX_DETAIL_CHARS = 500


@dataclass(frozen=True, slots=True)
class Fault:
    """What failed while one message was handled: the stage, the error's type and its text."""

    stage: str
    error_type: str
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.stage} failed on this message ({self.error_type}: {self.detail})"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message a consumer could not use, and why."""

    topic: str
    payload: bytes
    reason: str
    received_ms: int
    stage: str  # where it failed: topic, parse, validate, time, line (judged), write (InfluxDB), or a fault's
    error_type: str  # ContractError for what the contract refuses; the error's type for a fault


def dead_letter_body(*, worker: str, letter: DeadLetter, keep_bytes: int) -> bytes:
    """What goes to the dead-letter topic: enough to see what was wrong and with which message."""
    return json.dumps(
        {
            "worker": worker,
            "topic": letter.topic,
            "reason": letter.reason,
            "stage": letter.stage,
            "error_type": letter.error_type,
            "size": len(letter.payload),
            "payload": letter.payload[:keep_bytes].decode("utf-8", errors="replace"),
            "received_ms": letter.received_ms,
        },
        ensure_ascii=False,
    ).encode()


class Stage:
    """Where a handler is with its message, so that a failure names the step (set ``at`` as it goes)."""

    __slots__ = ("at",)

    def __init__(self, at: str) -> None:
        self.at = at


def contain(handle: Callable[[Stage], T], *, first_stage: str, what: str) -> T | Fault:
    """Run ``handle`` for one message; anything it raises but a MachineryError becomes that message's Fault.

    ``what`` names the message for the log (its topic). RecursionError and MemoryError are Exceptions and are
    contained too: a message deep or large enough to cause them is the message's fault, not the worker's."""
    stage = Stage(first_stage)
    try:
        return handle(stage)
    except MachineryError:
        raise
    except Exception as error:  # the boundary: whatever one message causes stays with it
        fault = Fault(stage.at, type(error).__name__, str(error)[:MAX_DETAIL_CHARS])
        log.error("message from %s: %s", what[:200], fault.reason, exc_info=True)
        return fault
