"""The gateway's loop (I/O shell around the pure core): read every machine at each window edge, telemetry tick
and poll; keep what the core makes in the durable spool with the core's checkpoint; send it; let go of it only
when ingest confirms it stored it; send again what went missing; re-state everything at every (re)connect.

Delivery is end to end (ARCHITECTURE.md, decision 7): a message leaves the spool on ingest's confirmation,
never on the broker's PUBACK. It is sent again after every reconnect (the broker may have lost it), and when a
later message of this gateway was confirmed ``hole_grace_s`` ago while it was not (it sits with a dead
worker, or the broker dropped it), with a backoff per message. Points are idempotent, so a resend is harmless.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import TypeAdapter

from ftel.contract import encode, topic_of
from ftel.contract.models import GatewayStatus, MachineMeta, Message, Rollup, StateWindow
from ftel.contract.states import MachineType
from ftel.contract.topics import GatewayKind, confirm_topic, gateway_topic
from ftel.retry import RetryPolicy
from ftel.settings import GatewaySettings, Settings
from gateway.core import CoreState, GatewayCore, GatewayTiming, SpoolCounts, edges_between
from gateway.driver import CountsRefusals, KnowsNextChange, MachineDriver, Reading
from gateway.publisher import GatewayLink, paho_link
from gateway.rollup import Accumulator
from gateway.round_trip import RoundTrip
from gateway.spool import Spool, SpoolEntry
from gateway.tracker import Origin, TrackerState

__all__ = ["DeliveryOptions", "Gateway", "GatewayTiming", "Progress", "build_gateway", "edges_between"]

log = logging.getLogger(__name__)


# At shutdown, an unconfirmed message is sent again after this long (nothing newer will show it is missing).
DRAIN_GRACE_S = 5.0
# While draining, how long to pause between two looks at the link (a second Ctrl-C ends the pause at once).
DRAIN_PAUSE_S = 0.02
# A message committed is sent from memory the first time instead of being read back from the spool, as long as
# fewer than this many wait for their first send (a link down for long: the rest are read back, as resends are).
FRESH_MAX = 10_000


_DEFAULTS = GatewaySettings()


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """The settings' delivery bounds (ftel/settings.py ``GatewaySettings`` says what each is for) and two
    cadences of the loop itself."""

    # Sending many QoS 1 messages without waiting for each PUBACK is what makes draining a spool fast; the
    # bound keeps paho's own memory small.
    max_in_flight: int = _DEFAULTS.max_in_flight
    # Confirmations of two workers may come a batch apart; only after this is a gap a loss.
    hole_grace_s: float = _DEFAULTS.hole_grace_s
    # A message that keeps going missing is sent again at most this rarely.
    resend_max_s: float = _DEFAULTS.resend_max_s
    # At shutdown, wait for confirmations while they keep coming; after this long without one, stop (what is
    # left stays in the spool for the next start).
    drain_stall_s: float = _DEFAULTS.drain_stall_s
    # The core's checkpoint is written with every message; with none to send, at least this often.
    checkpoint_every_s: float = 1.0
    # How often the spool is searched for gaps.
    hole_scan_every_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Progress:
    sim_ms: int
    published: int
    confirmed: int
    spool_depth: int
    dropped: int
    connected: bool


@dataclass(slots=True)
class _Pending:
    sent_at: float | None = None  # monotonic time of the last send; None: waiting to be sent
    attempts: int = 0


# The checkpoint's layout: 2 keeps the machines' hours so far and the held windows in parts of their own, not in
# the row (a row without ``layout``, written before, carries them).
_LAYOUT = 2


@dataclass(slots=True)
class _Checkpoint:
    fingerprint: str
    core: CoreState
    layout: int = 1


_CHECKPOINT = TypeAdapter(_Checkpoint)
# Parts of the checkpoint (gateway/spool.py), each rewritten only when it changed: a machine's tracker (keyed by
# the machine id), its hours so far (``hours/<machine>``), the windows and roll-ups held from one edge
# (``held/<edge ms>``). Ids never hold a '/' (ftel/contract/topics.py ID_PATTERN), so the keys cannot meet.
_TRACKER = TypeAdapter(TrackerState)
_HOURS = TypeAdapter(dict[int, tuple[MachineType, Accumulator]])
_HELD = TypeAdapter(list[StateWindow | Rollup])
_HOURS_PART = "hours/"
_HELD_PART = "held/"


class Gateway:
    def __init__(
        self,
        origin: Origin,
        drivers: Sequence[MachineDriver],
        *,
        now_ms: Callable[[], int],
        timing: GatewayTiming,
        link: GatewayLink,
        spool_max_messages: int,
        state_dir: Path | None = None,
        spool_power_safe: bool = True,
        delivery: DeliveryOptions = DeliveryOptions(),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``link``: the port to the broker (gateway/publisher.py), not started yet; the gateway starts it with
        its last will and stops it. ``state_dir``: where the spool and checkpoint live; None keeps them in memory
        (a throw-away run). ``spool_power_safe`` False: the spool survives the process's death, not a power cut
        (gateway/spool.py; simulated gateways). ``monotonic``: the clock of delivery's waits (grace, backoff,
        drain stall)."""
        self.origin = origin
        self._drivers = {d.info.machine_id: d for d in drivers}
        self._now_ms = now_ms
        self._timing = timing
        self._delivery = delivery
        self._monotonic = monotonic
        self._started = monotonic()
        self.spool = Spool(state_dir, max_messages=spool_max_messages, power_safe=spool_power_safe)
        self._last_commit = self._last_hole_scan = monotonic()
        self._fingerprint = _fingerprint(origin, timing, drivers)
        restored = self._restore()
        # The first commit writes every part and drops the rest: a fresh start (no checkpoint, or another
        # gateway's) has none of its own, and a resumed one may find parts older than its row (see
        # ``_restore_parts``); the core counts everything as changed at first.
        self._parts_written = False
        # Per edge of held windows: how many are written, and in which parts (``_changed_parts``).
        self._held_written: dict[int, tuple[int, list[str]]] = {}
        self.core = GatewayCore(
            origin, [d.info for d in drivers], timing, boot_id=time.time_ns() // 1_000_000, state=restored
        )
        self.resumed = restored is not None
        self._pending: dict[int, _Pending] = {seq: _Pending() for seq in self.spool.seqs()}
        self._to_send: deque[int] = deque(self._pending)
        self._fresh: dict[int, SpoolEntry] = {}  # committed, not sent yet (FRESH_MAX)
        self._in_flight = 0
        self._max_confirmed = 0
        self._confirmed_at = monotonic()  # when a confirmation last came
        self._round_trip = RoundTrip()  # send to confirmation: how long a hole may be only in appearance
        self._need_birth = False
        # Metas in the spool that no birth has followed yet (a fresh start's): the first birth need not repeat them.
        self._metas_queued = False
        self._end_ms: int | None = None
        self._last = 0
        # Machines whose driver knows its next change are read then (a heap of (time, machine)), the rest at
        # every tick; all of them at window and telemetry edges.
        self._changes: list[tuple[int, str]] = []
        self._next_change: dict[str, int] = {}
        # What each driver can do, decided once: isinstance on a runtime protocol costs microseconds, and a
        # county's gateway process would pay it per machine at every tick.
        self._scheduled: dict[str, KnowsNextChange] = {
            m: d for m, d in self._drivers.items() if isinstance(d, KnowsNextChange)
        }
        self._counting: dict[str, CountsRefusals] = {
            m: d for m, d in self._drivers.items() if isinstance(d, CountsRefusals)
        }
        self._polled = frozenset(m for m in self._drivers if m not in self._scheduled)
        # The oldest window edge a scheduled machine may not have been read at yet (None: none is owed).
        # A machine whose driver knows its next change is read at a window edge when it is next read, and at
        # the latest at the edge plus the gateway's close phase (``_settle``), not all on the edge: a county's
        # gateways would otherwise close every window at the same instant, and every message made meanwhile
        # would wait behind them. Its windows stay exact (it is read on the edge, only later).
        self._owed_from: int | None = None
        self.published = 0
        self.confirmed = 0
        self._abandoned = threading.Event()
        self._status_topic = gateway_topic(origin.site, origin.workshop, origin.gateway_id, GatewayKind.STATUS)
        self._will = encode(self.core.will(restored.last_ms if restored and restored.last_ms else now_ms()))
        self.link = link

    # -- checkpoint ----------------------------------------------------------------------------------------

    def _restore(self) -> CoreState | None:
        text = self.spool.checkpoint()
        if text is None:
            return None
        checkpoint = _CHECKPOINT.validate_json(text)
        _restore_parts(checkpoint, self.spool.checkpoint_parts())
        if checkpoint.fingerprint != self._fingerprint:
            log.warning(
                "gateway %s: the saved state belongs to other machines or another simulation; starting afresh "
                "(the %d messages still in its spool are delivered all the same)",
                self.origin.gateway_id,
                len(self.spool),
            )
            return None
        return checkpoint.core

    def _commit(self, messages: Sequence[Message]) -> None:
        entries = [self._entry(m) for m in messages]
        # The row keeps what is small; the rest goes as parts, only those that changed: a workshop's hundreds of
        # machines are not written again at every tick for the few that were read.
        state = self.core.state
        row = replace(state, trackers={}, rollups=replace(state.rollups, machine_hours={}), held=[])
        checkpoint = _CHECKPOINT.dump_json(_Checkpoint(self._fingerprint, row, _LAYOUT)).decode()
        parts, gone = self._changed_parts()
        kept = self.spool.commit(entries, checkpoint, parts, gone, every_part=not self._parts_written)
        self._parts_written = True
        if len(kept) < len(entries):
            log.error(
                "gateway %s: spool full (%d messages): %d new messages dropped; bring the pipeline back (ingest, "
                "the broker) or raise FTEL_GATEWAY__SPOOL_MAX_MESSAGES",
                self.origin.gateway_id,
                self.spool.max_messages,
                len(entries) - len(kept),
            )
        for entry in kept:
            self._pending[entry.seq] = _Pending()
            self._to_send.append(entry.seq)
            if len(self._fresh) < FRESH_MAX:
                self._fresh[entry.seq] = entry
        self._last_commit = self._monotonic()

    def _changed_parts(self) -> tuple[dict[str, str], list[str]]:
        """The parts of the checkpoint that changed since the last commit: (written again, gone)."""
        changed, core = self.core.take_changed(), self.core
        parts = {m: _TRACKER.dump_json(core.state.trackers[m]).decode() for m in changed.trackers}
        gone: list[str] = []
        for machine_id in changed.machine_hours:
            hours = core.machine_hours(machine_id)
            if hours:
                parts[_HOURS_PART + machine_id] = _HOURS.dump_json(hours).decode()
            else:
                gone.append(_HOURS_PART + machine_id)
        for edge in changed.held:
            held = core.held_at(edge)
            done, names = self._held_written.pop(edge, (0, []))
            if len(held) < done:  # not only added to: written again whole
                gone.extend(names)
                done, names = 0, []
            if held:
                # What an edge holds grows as its machines are read, then leaves whole: each commit writes
                # only what was added, as a part of its own (from its index), not the edge's whole list again.
                if len(held) > done:
                    names = [*names, f"{_HELD_PART}{edge}/{done}"]
                    parts[names[-1]] = _HELD.dump_json(held[done:]).decode()
                self._held_written[edge] = (len(held), names)
            else:
                gone.extend(names)
        return parts, gone

    def _entry(self, message: Message) -> SpoolEntry:
        # The retained ones: the gateway's status and each machine's meta (what a newcomer must know first).
        retain = isinstance(message, GatewayStatus | MachineMeta)
        return SpoolEntry(message.seq, topic_of(message), encode(message), retain)

    # -- delivery ------------------------------------------------------------------------------------------

    def _take_confirmations(self) -> None:
        confirmed: list[int] = []
        now = self._monotonic()
        for confirmation in self.link.take_confirmations():
            for seq in confirmation.seqs():
                self._max_confirmed = max(self._max_confirmed, seq)
                pending = self._pending.pop(seq, None)
                if pending is not None:
                    confirmed.append(seq)
                    self._fresh.pop(seq, None)
                    if pending.attempts == 1 and pending.sent_at is not None:  # sent once: Karn's rule
                        self._round_trip.sample(now - pending.sent_at)
        if confirmed:
            self.confirmed += self.spool.confirm(confirmed)
            self._confirmed_at = now

    def _on_connects(self) -> None:
        if not self.link.take_connects():
            return
        # The broker may have lost whatever was sent before (a crash, a lost disk): send it all again.
        self._in_flight = 0
        for pending in self._pending.values():
            pending.sent_at = None
        self._to_send = deque(self._pending)
        self._need_birth = True

    def _find_holes(self, *, draining: bool = False) -> None:
        """Unconfirmed messages older than a confirmed one go again, each with its own backoff. While draining
        at shutdown nothing newer will come to reveal a gap, so every unconfirmed message is a candidate, on a
        short grace."""
        now = self._monotonic()
        d = self._delivery
        # Never sooner than confirmations take (gateway/round_trip.py): a message waiting in a worker's queue
        # behind a backlog is no hole, and copies of the backlog would only lengthen it.
        floor = min(d.hole_grace_s, DRAIN_GRACE_S) if draining else d.hole_grace_s
        grace = self._round_trip.grace_s(floor, max(floor, d.resend_max_s))
        # While draining, once no confirmation came for a quarter of the stall limit, a message goes again at
        # least every quarter of it, whatever backoff it earned before: a longer wait would end the drain on the
        # gateway's own backoff (a worker gone for good keeps taking its share of the sends until its session
        # expires, so a message may go missing several times in a row). While confirmations come, ingest is
        # only slow: the backoff stands, and the backlog is not filled with copies.
        quarter_s = d.drain_stall_s / 4
        stalled = draining and now - self._confirmed_at >= quarter_s
        cap_s = min(d.resend_max_s, quarter_s) if stalled else d.resend_max_s
        resend: list[int] = []
        for seq, pending in self._pending.items():
            if seq >= self._max_confirmed and not draining:
                break  # held in seq order: nothing later can be a gap yet
            if pending.sent_at is None:
                continue
            # The project's one policy; no jitter here: the wait is judged again at every look, and messages
            # are already spread by when they were sent.
            wait = RetryPolicy(grace, cap_s, jitter=0.0).backoff(min(pending.attempts - 1, 10))
            if now - pending.sent_at >= wait:
                pending.sent_at = None
                resend.append(seq)
        if resend:
            log.info(
                "gateway %s: %d messages unconfirmed %s; sending them again",
                self.origin.gateway_id,
                len(resend),
                "at shutdown" if draining else "past later ones",
            )
            self._to_send.extendleft(reversed(resend))

    def _send(self) -> None:
        self._in_flight = max(0, self._in_flight - self.link.take_pubacks())
        if not self.link.is_connected():
            return
        room = self._delivery.max_in_flight - self._in_flight
        while room > 0 and self._to_send:
            batch: list[int] = []
            while self._to_send and len(batch) < room:
                seq = self._to_send.popleft()
                pending = self._pending.get(seq)
                if pending is not None and pending.sent_at is None:
                    batch.append(seq)
            if not batch:
                return
            for entry in self._entries(batch):
                pending = self._pending[entry.seq]
                if not self.link.publish(entry.topic, entry.payload, retain=entry.retain and pending.attempts == 0):
                    self._to_send.appendleft(entry.seq)
                    return
                self._fresh.pop(entry.seq, None)
                pending.sent_at = self._monotonic()
                pending.attempts += 1
                self.published += 1
                self._in_flight += 1
                room -= 1

    def _entries(self, seqs: list[int]) -> Iterator[SpoolEntry]:
        """The spool's entries of ``seqs``, in that order: from memory those never sent, the rest read back."""
        if all(seq in self._fresh for seq in seqs):
            yield from (self._fresh[seq] for seq in seqs)
            return
        stored = {entry.seq: entry for entry in self.spool.read(seq for seq in seqs if seq not in self._fresh)}
        for seq in seqs:
            entry = self._fresh.get(seq) or stored.get(seq)
            if entry is not None:
                yield entry

    def _deliver(self, *, draining: bool = False) -> None:
        self._take_confirmations()
        self._on_connects()
        if self._monotonic() - self._last_hole_scan >= self._delivery.hole_scan_every_s:
            self._find_holes(draining=draining)
            self._last_hole_scan = self._monotonic()
        self._send()

    # -- the loop ------------------------------------------------------------------------------------------

    def progress(self, sim_ms: int) -> Progress:
        return Progress(
            sim_ms, self.published, self.confirmed, len(self.spool), self.spool.dropped, self.link.is_connected()
        )

    def _read(self, at_ms: int, machines: Iterable[str] | None = None) -> list[Message]:
        """Read ``machines`` (all by default) at ``at_ms``, each first at the window edges it owes; note when each
        one that knows will next change."""
        chosen = self._drivers if machines is None else {m: self._drivers[m] for m in machines}
        made = self.core.observe(at_ms, {machine_id: self._readings(machine_id, at_ms) for machine_id in chosen})
        for machine_id in chosen:
            scheduled = self._scheduled.get(machine_id)
            if scheduled is not None:
                self._schedule(machine_id, self._next_read(machine_id, scheduled))
        return made

    def _readings(self, machine_id: str, at_ms: int) -> list[Reading]:
        """The machine's readings up to ``at_ms``: a scheduled one's first at each window edge before it that
        it was not read at (the counters on the edge: exact windows)."""
        driver = self._drivers[machine_id]
        if machine_id not in self._scheduled:
            return driver.read(at_ms)
        readings: list[Reading] = []
        for edge in self._owed_edges(machine_id, at_ms):
            readings.extend(driver.read(edge))
        readings.extend(driver.read(at_ms))
        return readings

    def _owed_edges(self, machine_id: str, before_ms: int) -> range:
        """The window edges before ``before_ms`` that the machine has not been read at (its open window's end
        and each one after it)."""
        end = self._window_end(machine_id)
        return range(0) if end is None else range(end, before_ms, self._timing.window_ms)

    def _window_end(self, machine_id: str) -> int | None:
        state = self.core.trackers[machine_id].state
        return None if state.last is None else state.window_start + self._timing.window_ms

    def _settle(self, until_ms: int) -> list[Message]:
        """Read every scheduled machine at each window edge up to ``until_ms`` that it still owes: before the
        gateway sends the windows closed on an edge (its close phase after it), and when it stops."""
        made: list[Message] = []
        while self._owed_from is not None and self._owed_from <= until_ms:
            edge = self._owed_from
            owing = [m for m in self._scheduled if (end := self._window_end(m)) is not None and end <= edge]
            if owing:
                made.extend(self._read(edge, owing))
            self._owed_from = edge + self._timing.window_ms
        return made

    def _on_edge(self, at_ms: int) -> frozenset[str] | None:
        """Who is read on an edge: everyone on a shared telemetry edge (no spread), else (a window edge) the
        polled machines only; the scheduled ones owe it (``_readings``, ``_settle``)."""
        t = self._timing
        if not t.telemetry_spread and at_ms % t.telemetry_interval_ms == 0:
            return None
        return self._polled

    def _next_read(self, machine_id: str, driver: KnowsNextChange) -> int:
        """Its next change, or its next telemetry sample when each machine samples at its own time."""
        if self._timing.telemetry_spread:
            return min(driver.next_change_ms(), self.core.next_sample_ms(machine_id))
        return driver.next_change_ms()

    def _refused(self) -> dict[str, int]:
        """What each machine's controller said that its driver refused (out of range, unknown fault codes)."""
        return {
            f"{machine_id}/{why}": count
            for machine_id, driver in self._counting.items()
            for why, count in sorted(driver.refusals().items())
        }

    def _schedule(self, machine_id: str, at_ms: int) -> None:
        if self._next_change.get(machine_id) != at_ms:
            self._next_change[machine_id] = at_ms
            heapq.heappush(self._changes, (at_ms, machine_id))

    def _due(self, now_ms: int) -> list[str]:
        """Machines to read at ``now_ms`` (but on a shared telemetry edge): those whose change is due, and every
        one whose driver cannot say when it will change."""
        due = set(self._polled)
        while self._changes and self._changes[0][0] <= now_ms:
            at_ms, machine_id = heapq.heappop(self._changes)
            if self._next_change.get(machine_id) == at_ms:
                due.add(machine_id)
        return sorted(due)

    def _start(self, first_read_ms: int | None, end_ms: int | None) -> int:
        """Resume from the checkpoint, or read every machine once to start; return the time read up to."""
        if self.resumed and self.core.last_ms is not None:
            last = self.core.last_ms
            gaps: list[Message] = []
            for machine_id, driver in self._drivers.items():
                # Each machine from its own last reading: between edges, machines are read only when they change.
                seen = self.core.trackers[machine_id].last_ms or last
                if not driver.resume(seen):
                    gaps.extend(self.core.unseen_since(machine_id, seen))
                scheduled = self._scheduled.get(machine_id)
                if scheduled is not None:
                    self._schedule(machine_id, self._next_read(machine_id, scheduled))
            log.info("gateway %s resumes from its checkpoint at %d", self.origin.gateway_id, last)
            self._commit(gaps)
            return last
        last = self._now_ms() if first_read_ms is None else first_read_ms
        if end_ms is not None:
            last = min(last, end_ms)
        self._commit([*self._read(last), *self.core.metas(last)])
        self._metas_queued = True
        return last

    def begin(self, *, first_read_ms: int | None = None, end_ms: int | None = None) -> None:
        """Connect and take the first readings (or resume). ``first_read_ms``: when to start watching on a fresh
        start (a simulation: its start); default now. A gateway with a checkpoint resumes from it instead."""
        self._end_ms = end_ms
        o = self.origin
        self.link.start(
            will=(self._status_topic, self._will), confirm_topic=confirm_topic(o.site, o.workshop, o.gateway_id)
        )
        self._last = self._start(first_read_ms, end_ms)
        ends = (self._window_end(m) for m in self._scheduled)
        self._owed_from = min((end for end in ends if end is not None), default=None)

    @property
    def finished(self) -> bool:
        return self._end_ms is not None and self._last >= self._end_ms

    @property
    def last_ms(self) -> int:
        """Plant time the gateway has read up to."""
        return self._last

    def run(
        self,
        stop: threading.Event,
        *,
        end_ms: int | None = None,
        first_read_ms: int | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        progress_every_s: float = 2.0,
    ) -> Progress:
        """Watch the machines until ``stop`` or ``end_ms``, then shut down (see ``shutdown``)."""
        self.begin(first_read_ms=first_read_ms, end_ms=end_ms)
        next_progress = self._monotonic() + progress_every_s
        while not stop.is_set():
            self.tick()
            if on_progress and self._monotonic() >= next_progress:
                on_progress(self.progress(self._last))
                next_progress = self._monotonic() + progress_every_s
            if self.finished:
                break
            stop.wait(self._timing.tick_s)
        return self.shutdown(self._last)

    def tick(self) -> None:
        """One round: read what is due, keep and send what it makes, take confirmations."""
        last, now = self._last, self._now_ms()
        if self._end_ms is not None:
            now = min(now, self._end_ms)
        made: list[Message] = []
        if now > last:
            edges = self.core.edges(last, now)
            phase = self._timing.close_phase_ms
            for at in edges:
                made.extend(self._settle(at - phase))
                if at != now:
                    made.extend(self._read(at, self._on_edge(at)))
            made.extend(self._settle(now - phase))
            everyone = bool(edges) and edges[-1] == now and self._on_edge(now) is None
            made.extend(self._read(now, None if everyone else self._due(now)))
            beat = self.core.heartbeat(
                last,
                now,
                uptime_ms=int((self._monotonic() - self._started) * 1000),
                spool=SpoolCounts(len(self._pending), self.spool.dropped),
                refused=self._refused,
            )
            if beat is not None:
                made.append(beat)
            self._last = now
        if self._need_birth and self.link.is_connected():
            # After the reads: the birth re-states each machine as of now, after everything sent so far.
            # A fresh start's metas go out on this connection anyway: a county's start would send them twice.
            metas = [] if self._metas_queued else self.core.metas(self._last)
            made.extend([self.core.birth(), *metas])
            self._need_birth = self._metas_queued = False
        if made or self._monotonic() - self._last_commit >= self._delivery.checkpoint_every_s:
            self._commit(made)
        self._deliver()

    @property
    def unconfirmed(self) -> int:
        """Messages sent or to send that ingest has not confirmed yet (readable from another thread)."""
        return len(self._pending)

    def abandon_drain(self) -> None:
        """From any thread: stop waiting for confirmations now (a second Ctrl-C); what is unconfirmed stays in
        the spool for the next start."""
        self._abandoned.set()

    def shutdown(self, at_ms: int) -> Progress:
        """Close partial windows, announce the death (a clean disconnect sends no last will), wait for ingest
        to confirm what is left, stop. What is not confirmed stays in the spool for the next start."""
        self._commit([*self._settle(at_ms), *self.core.close(at_ms), self.core.death(at_ms)])
        last_confirmed, stalled_since = self.confirmed, self._monotonic()
        while (
            self._pending
            and not self._abandoned.is_set()
            and self._monotonic() - stalled_since < self._delivery.drain_stall_s
        ):
            self._deliver(draining=True)
            if self.confirmed != last_confirmed:
                last_confirmed, stalled_since = self.confirmed, self._monotonic()
            self._abandoned.wait(DRAIN_PAUSE_S)
        if self._pending:
            where = f"stay in {self.spool.path} for the next start" if self.spool.path else "are LOST (no state dir)"
            log.warning(
                "gateway %s: %d messages not confirmed by ingest at shutdown %s",
                self.origin.gateway_id,
                len(self._pending),
                where,
            )
        final = self.progress(at_ms)
        self.link.stop()
        self.spool.close()
        return final


def _restore_parts(checkpoint: _Checkpoint, parts: dict[str, str]) -> None:
    """Put the checkpoint's parts back into its core state. The row carries the trackers when a build from
    before the parts wrote it (after parts were written: those parts are older than the row's trackers), and
    the machines' hours and held windows when its layout is older than 2; the first commit writes every part
    again."""
    core = checkpoint.core
    take_trackers = not core.trackers
    take_rest = checkpoint.layout >= _LAYOUT
    held: list[tuple[tuple[int, int], list[StateWindow | Rollup]]] = []
    for key, part in parts.items():
        if key.startswith(_HOURS_PART):
            if take_rest:
                machine_id = key.removeprefix(_HOURS_PART)
                for hour, entry in _HOURS.validate_json(part).items():
                    core.rollups.machine_hours.setdefault(hour, {})[machine_id] = entry
        elif key.startswith(_HELD_PART):
            if take_rest:
                # held/<edge>/<index of its first message>, or held/<edge> (one part per edge, before 2026-12).
                edge, _, first = key.removeprefix(_HELD_PART).partition("/")
                held.append(((int(edge), int(first or 0)), _HELD.validate_json(part)))
        elif take_trackers:
            core.trackers[key] = _TRACKER.validate_json(part)
    if take_rest:
        core.held = [message for _, messages in sorted(held, key=lambda h: h[0]) for message in messages]


def _fingerprint(origin: Origin, timing: GatewayTiming, drivers: Sequence[MachineDriver]) -> str:
    """What a checkpoint must match to be resumed: the same gateway, windows and machines behind the same
    drivers (a simulated machine of another simulation is another machine)."""
    identity = {
        "origin": [origin.site, origin.workshop, origin.gateway_id],
        "window_ms": timing.window_ms,
        "telemetry_ms": timing.telemetry_interval_ms,
        "machines": [[d.info.machine_id, d.info.machine_type.value, d.resume_key] for d in drivers],
    }
    return hashlib.blake2b(json.dumps(identity).encode(), digest_size=16).hexdigest()


def gateway_state_dir(settings: Settings, origin: Origin) -> Path:
    base = settings.gateway.state_dir or settings.stack.dir / "gateways"
    return base / origin.site / origin.gateway_id


def build_gateway(
    settings: Settings,
    origin: Origin,
    drivers: Sequence[MachineDriver],
    *,
    now_ms: Callable[[], int],
    timing: GatewayTiming,
    durable: bool = True,
    power_safe: bool = True,
    link: GatewayLink | None = None,
) -> Gateway:
    """A gateway as the settings say: its state dir, its delivery options, and (unless the caller hands it
    another) a paho link to the settings' broker with its identity's credentials. ``power_safe`` False: its
    spool survives the process's death, not a power cut (a simulated gateway, as the settings say)."""
    g = settings.gateway
    return Gateway(
        origin,
        drivers,
        now_ms=now_ms,
        timing=timing,
        link=link or paho_link(settings, origin.gateway_id),
        spool_max_messages=g.spool_max_messages,
        state_dir=gateway_state_dir(settings, origin) if durable else None,
        spool_power_safe=power_safe,
        delivery=DeliveryOptions(
            max_in_flight=g.max_in_flight,
            hole_grace_s=g.hole_grace_s,
            resend_max_s=g.resend_max_s,
            drain_stall_s=g.drain_stall_s,
        ),
    )
