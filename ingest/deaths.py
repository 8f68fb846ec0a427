"""A vanished gateway's death, written by ingest (pure): the one owner of its machines' OFFLINE.

A last will is published by the broker when a gateway vanishes; it was registered at connect, so its own time
says nothing of when the gateway died. The death is the time of the last message the gateway was seen to send
(ftel/contract/liveness.py, the rule the alert engine and the boards share), and the stream is split over the
ingest workers by the shared subscription, so each worker keeps what it stored of each gateway in InfluxDB
(ftel/storage/seen.py) and the worker that takes the will reads the newest of them all.

The gateway's last messages may still be in another worker's batch when the will arrives (the broker hands them
out before the will, but each worker writes on its own), so the worker waits ``death_settle_s`` (a few flush
intervals) before it reads, and acknowledges the will only once the death is written: a worker that dies before
leaves the will to another, which decides the same time from the same record, and writes the same points (same
series, same time: they overwrite). The wait is kept below a gateway's first reconnect delay, so a gateway that
comes back in the same boot is not seen alive before its death is read (a new boot's birth makes the will stale).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TypeGuard

from ftel.contract.liveness import death_time_ms, is_stale
from ftel.contract.models import GatewayStatus, Heartbeat, Message
from ftel.storage.lineproto import Point, encode_point
from ftel.storage.points import death_points
from ftel.storage.seen import GatewayKey, Seen, seen_point


def gateway_of(message: Message) -> GatewayKey:
    return (message.site, message.workshop, message.gateway_id)


def is_will(message: Message) -> TypeGuard[GatewayStatus]:
    return isinstance(message, GatewayStatus) and message.will


class SeenTracker:
    """What one worker stored of each gateway: its newest message time (wills apart: the broker sends those)
    and the newest boot it announced; what changed goes out as ``gateway_seen`` points with the next batch."""

    def __init__(self) -> None:
        self._seen: dict[GatewayKey, Seen] = {}
        self._changed: set[GatewayKey] = set()

    def note(self, message: Message) -> None:
        if is_will(message):
            return
        key = gateway_of(message)
        boot = message.boot_id if isinstance(message, GatewayStatus | Heartbeat) else 0
        old = self._seen.get(key)
        new = Seen(message.ts, boot) if old is None else Seen(max(old.last_ms, message.ts), max(old.boot_id, boot))
        if new != old:
            self._seen[key] = new
            self._changed.add(key)

    def seen(self, gateway: GatewayKey) -> Seen | None:
        """This worker's own record (what it may use when it may not read the others'). Read from the writer
        thread: one dict lookup of an immutable value, which the main thread's updates never leave half-done."""
        return self._seen.get(gateway)

    def mark_all_changed(self) -> None:
        """A batch was not stored (the broker hands its messages out again): write every record again."""
        self._changed.update(self._seen)

    def take_lines(self, *, worker: str) -> list[str]:
        """The points of what changed since the last call (to store in the batch of the messages that did it)."""
        changed, self._changed = sorted(self._changed), set()
        return [encode_point(seen_point(key, self._seen[key], worker=worker)) for key in changed]


def death_at(will: GatewayStatus, seen: Seen | None) -> int | None:
    """When the gateway that left ``will`` died, given what the workers stored of it since the will was
    registered; None when the will is stale (the gateway already announced a newer boot)."""
    if seen is None:
        return death_time_ms(will, 0)
    if is_stale(will, seen.boot_id or None):
        return None
    return death_time_ms(will, seen.last_ms)


def death_lines(will: GatewayStatus, seen: Seen | None) -> list[str]:
    """The death's points: the gateway offline and each of its machines OFFLINE, at ``death_at``; none for a
    stale will."""
    at = death_at(will, seen)
    if at is None:
        return []
    points: list[Point] = death_points(will, at)
    return [encode_point(p) for p in points]


@dataclass(frozen=True, slots=True)
class PendingDeath:
    will: GatewayStatus
    mid: int | None  # acknowledged once the death is written
    generation: int  # the MQTT connection that delivered it
    due: float  # monotonic seconds


class Deaths:
    """Wills waiting out the settle time, in arrival order (pure: the caller gives the time)."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self._waiting: deque[PendingDeath] = deque()

    def add(self, will: GatewayStatus, *, mid: int | None, generation: int, now: float) -> None:
        self._waiting.append(PendingDeath(will, mid, generation, now + self.settle_s))

    def due(self, now: float, *, generation: int) -> list[PendingDeath]:
        """Those whose time has come, from the current connection; a will from an older one is dropped (the
        broker hands it out again, since it was not acknowledged)."""
        out: list[PendingDeath] = []
        while self._waiting and (self._waiting[0].due <= now or self._waiting[0].generation != generation):
            pending = self._waiting.popleft()
            if pending.generation == generation:
                out.append(pending)
        return out

    def __len__(self) -> int:
        return len(self._waiting)
