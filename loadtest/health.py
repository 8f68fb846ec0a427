"""What the load test reads from the wire, translated once (pure): an ingest worker's retained health and a
gateway's heartbeat, and the workers' latency histograms merged into one."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import ValidationError

from alerts.lifecycle import AlertRecord, Status
from ftel.contract import ContractError, Heartbeat, decode
from ftel.histogram import BOUNDS_MS, Histogram


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    """One ingest worker's health (ingest/worker.py ``_health``); counters are cumulative since it started."""

    worker: str
    ts: int
    blocked: bool
    messages_in: int
    points_written: int
    dead_letters: int
    retries: int
    lag_ms: int
    unacked: int
    latency_counts: tuple[int, ...]

    @property
    def latency(self) -> Histogram:
        return Histogram(list(self.latency_counts))


def parse_health(payload: bytes) -> WorkerHealth | None:
    """A worker's health, or None when the payload is not one (an empty retained message, another version).
    A histogram with other bucket bounds than ours cannot be merged exactly: it is left out (counts empty)."""
    try:
        data = json.loads(payload)
        same_bounds = data.get("latency_bounds_ms") == list(BOUNDS_MS)
        counts = tuple(int(c) for c in data.get("latency_counts", ())) if same_bounds else ()
        return WorkerHealth(
            worker=str(data["worker"]),
            ts=int(data["ts"]),
            blocked=data.get("state") == "blocked",
            messages_in=int(data["messages_in"]),
            points_written=int(data["points_written"]),
            dead_letters=int(data.get("dead_letters", 0)),
            retries=int(data.get("retries", 0)),
            lag_ms=int(data.get("lag_ms", 0)),
            unacked=int(data.get("unacked", 0)),
            latency_counts=counts if len(counts) == len(BOUNDS_MS) + 1 else (),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def merge_latency(healths: Iterable[WorkerHealth]) -> Histogram:
    """Every worker's histogram in one: exact, since they share the bucket bounds."""
    merged = Histogram()
    for health in healths:
        if health.latency_counts:
            merged.merge(health.latency)
    return merged


@dataclass(frozen=True, slots=True)
class GatewayBeat:
    gateway_id: str
    ts: int
    spool_depth: int
    spool_dropped: int


def parse_heartbeat(topic: str, payload: bytes) -> GatewayBeat | None:
    try:
        _, message = decode(topic, payload)
    except ContractError:
        return None
    if not isinstance(message, Heartbeat):
        return None
    return GatewayBeat(message.gateway_id, message.ts, message.spool_depth, message.spool_dropped)


def parse_alert(payload: bytes) -> AlertRecord | None:
    """An alert record as the alert worker publishes it; None for anything else (a cleared retained topic)."""
    if not payload:
        return None
    try:
        return AlertRecord.model_validate_json(payload)
    except ValidationError:
        return None


def is_firing(record: AlertRecord) -> bool:
    return record.status is Status.FIRING
