"""A batch of messages on their way to InfluxDB (pure): their lines, the MQTT message ids to acknowledge, the
senders to confirm, and the dead letters to publish, all released together once the batch is stored."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ftel.boundary import DeadLetter
from ftel.contract import Confirmation, Sender, confirm_topic, encode
from ftel.contract.limits import MAX_CONFIRM_RANGES
from ftel.contract.models import GatewayStatus


@dataclass(slots=True)
class Held:
    """One message of the batch: where its lines are, so a line InfluxDB refuses leads back to it."""

    topic: str
    payload: bytes
    received_ms: int
    first_line: int
    line_count: int
    sender: Sender | None
    ts: int = 0  # the message's own time, for its latency


@dataclass(slots=True)
class Batch:
    """Lines waiting to be written, what to release once they are. ``generation``: the MQTT connection the
    message ids belong to (after a reconnect the broker hands them out again, so they are not acknowledged)."""

    generation: int
    lines: list[str] = field(default_factory=list)
    mids: list[int] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    senders: list[Sender] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # Last wills whose deaths the writer decides and writes after the lines (ingest/deaths.py).
    wills: list[GatewayStatus] = field(default_factory=list)
    first_received: float = 0.0

    def _touch(self) -> None:
        if not self.lines and not self.mids:
            self.first_received = time.monotonic()

    def add(
        self,
        lines: tuple[str, ...],
        *,
        mid: int | None,
        topic: str,
        payload: bytes,
        received_ms: int,
        sender: Sender | None,
        ts: int = 0,
    ) -> None:
        self._touch()
        self.held.append(Held(topic, payload, received_ms, len(self.lines), len(lines), sender, ts))
        self.lines.extend(lines)
        if mid is not None:
            self.mids.append(mid)
        if sender is not None:
            self.senders.append(sender)

    def add_dead_letter(self, letter: DeadLetter, line: str, *, mid: int | None, sender: Sender | None) -> None:
        self._touch()
        self.lines.append(line)
        self.dead_letters.append(letter)
        if mid is not None:
            self.mids.append(mid)
        if sender is not None:
            self.senders.append(sender)

    def add_death(self, will: GatewayStatus, *, mid: int | None) -> None:
        """A will whose settle time is over: its death is written with this batch, and it is acknowledged then."""
        self._touch()
        self.wills.append(will)
        if mid is not None:
            self.mids.append(mid)

    def add_line(self, line: str) -> None:
        """A line of the worker's own (its health): nothing to acknowledge or confirm."""
        self._touch()
        self.lines.append(line)

    def messages(self) -> int:
        return len(self.mids)

    def __len__(self) -> int:
        return len(self.lines)

    def owner_of(self, line_index: int) -> Held | None:
        for held in self.held:
            if held.first_line <= line_index < held.first_line + held.line_count:
                return held
        return None


def runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive runs: 1,2,3,7,8 → (1, 3), (7, 8)."""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def confirmations(senders: Iterable[Sender], *, worker: str) -> list[tuple[str, bytes]]:
    """(topic, payload) of one confirmation per gateway for these senders."""
    by_gateway: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for s in senders:
        by_gateway[(s.site, s.workshop, s.gateway_id)].append(s.seq)
    out: list[tuple[str, bytes]] = []
    for (site, workshop, gateway_id), seqs in sorted(by_gateway.items()):
        merged = runs(seqs)
        for start in range(0, len(merged), MAX_CONFIRM_RANGES):
            confirmation = Confirmation(
                site=site,
                workshop=workshop,
                gateway_id=gateway_id,
                worker=worker,
                ranges=merged[start : start + MAX_CONFIRM_RANGES],
            )
            out.append((confirm_topic(site, workshop, gateway_id), encode(confirmation)))
    return out
