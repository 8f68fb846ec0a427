"""A gateway's pure core: the trackers of its machines, its sequence numbers and the messages they make.

No I/O: the runner (MQTT, spool, drivers, clock) and the backfill (straight to InfluxDB) both drive it, so a
backfilled history is what the live pipeline would have stored. Its whole state is a ``CoreState`` that the
runner checkpoints with the spool in one transaction.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ftel.contract import limits
from ftel.contract.models import GatewayStatus, Heartbeat, MachineMessage, MachineNow, Message, Rollup, StateWindow
from ftel.contract.states import MachineState, MachineType
from gateway.driver import MachineInfo, Reading
from gateway.rollup import HOUR_MS, Accumulator, Rolled, RollupState, add_windows, due, partial
from gateway.tracker import MachineTracker, Origin, TrackerState


@dataclass(frozen=True, slots=True)
class GatewayTiming:
    window_ms: int
    telemetry_interval_ms: int
    heartbeat_interval_ms: int
    tick_s: float
    # Each machine samples its telemetry at its own offset in the interval instead of all at once on the edge:
    # a county's fleet does not send every sample in the same second (windows stay on the edge: they must).
    # No default here: the settings decide it (FTEL_GATEWAY__TELEMETRY_SPREAD) and every shell passes it down.
    telemetry_spread: bool
    # How long after each window edge this gateway sends the full windows and roll-ups it closed on that edge
    # (``close_phase_ms``; the settings decide it, FTEL_GATEWAY__CLOSE_PHASE_S, and the shells pass it down):
    # windows stay on the edge, exact; what moves is when they go out, so a county's gateways do not all send at
    # the same instant. 0 (a core driven without publishing, the backfill): at the edge.
    close_phase_ms: int = 0


def edges_between(after_ms: int, until_ms: int, interval_ms: int) -> range:
    """Multiples of ``interval_ms`` in (after_ms, until_ms]."""
    first = (after_ms // interval_ms + 1) * interval_ms
    return range(first, until_ms + 1, interval_ms)


def _phase(key: str, interval_ms: int) -> int:
    """A stable offset in [0, interval) per machine or gateway id, whole seconds."""
    digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % max(1, interval_ms // 1000) * 1000


def _held_edge(message: StateWindow | Rollup) -> int:
    return message.ts


def _open_window(tracker: MachineTracker) -> int | None:
    """The start of the machine's open window; None before its first reading."""
    return tracker.state.window_start if tracker.state.last is not None else None


def _observe_all(tracker: MachineTracker, readings: list[Reading]) -> list[MachineMessage]:
    return [message for reading in readings for message in tracker.observe(reading)]


def close_phase_ms(gateway_id: str, window_ms: int, configured_s: float | None) -> int:
    """When in the window after its edge a gateway sends the windows it closed there: ``configured_s`` (taken
    modulo the window), or, by default (None), a phase derived from the gateway id (whole seconds, the same at
    every start)."""
    if configured_s is None:
        return _phase(gateway_id, window_ms)
    return round(configured_s * 1000) % window_ms


@dataclass(slots=True)
class CoreState:
    next_seq: int = 1
    last_ms: int | None = None  # every machine has been read up to here
    newest_ts: int = 0  # the newest timestamp of any message made so far
    trackers: dict[str, TrackerState] = field(default_factory=dict)  # machine id -> its tracker
    rollups: RollupState = field(default_factory=RollupState)
    # Full windows and roll-ups closed on an edge, waiting for the gateway's phase after it (as made, ``ts`` the
    # edge): kept with the checkpoint, so a restart sends them.
    held: list[StateWindow | Rollup] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Changed:
    """What of the core's state changed since the last ``take_changed``: the parts of its checkpoint to write
    again (gateway/spool.py), so a commit costs what changed, not the workshop."""

    trackers: set[str]  # machines whose tracker changed
    machine_hours: set[str]  # machines whose hours so far (the roll-up state) changed
    held: set[int]  # edges whose held windows and roll-ups changed (held, or sent)


@dataclass(frozen=True, slots=True)
class SpoolCounts:
    depth: int
    dropped: int


class GatewayCore:
    def __init__(
        self,
        origin: Origin,
        machines: Sequence[MachineInfo],
        timing: GatewayTiming,
        *,
        boot_id: int,
        state: CoreState | None = None,
    ) -> None:
        self.origin = origin
        self.timing = timing
        self.boot_id = boot_id
        self.state = state or CoreState()
        self.machine_types = {m.machine_id: m.machine_type for m in machines}
        self.trackers: dict[str, MachineTracker] = {}
        for info in machines:
            tracker_state = self.state.trackers.setdefault(info.machine_id, TrackerState())
            phase = _phase(info.machine_id, timing.telemetry_interval_ms) if timing.telemetry_spread else 0
            self.trackers[info.machine_id] = MachineTracker(
                origin,
                info,
                window_ms=timing.window_ms,
                telemetry_interval_ms=timing.telemetry_interval_ms,
                telemetry_phase_ms=phase,
                next_seq=self.next_seq,
                state=tracker_state,
            )
        # How many machines have each window open, by its start: the oldest is what the roll-ups wait for, asked
        # at every read while a closed window waits (a machine closes its window when next read after the edge),
        # so it is counted as windows move, not looked for among every machine.
        self._open_windows: Counter[int] = Counter(
            t.state.window_start for t in self.trackers.values() if t.state.last is not None
        )
        # Each machine's place: messages are made in this order whichever machines are read.
        self._order = {machine_id: index for index, machine_id in enumerate(self.trackers)}
        # What changed since ``take_changed`` (the runner checkpoints only these): everything at first.
        self._touched: set[str] = set(self.trackers)
        self._hours_changed = {m for machines in self.state.rollups.machine_hours.values() for m in machines}
        self._held_changed = {m.ts for m in self.state.held}
        # When the first held message is due (its edge plus the phase): a tick before it looks no further.
        self._held_due = self._first_due()

    def take_changed(self) -> Changed:
        """What may have changed since the last call (every part at first)."""
        changed = Changed(self._touched, self._hours_changed, self._held_changed)
        self._touched, self._hours_changed, self._held_changed = set(), set(), set()
        return changed

    def machine_hours(self, machine_id: str) -> dict[int, tuple[MachineType, Accumulator]]:
        """The machine's windows so far in each open hour (its part of the roll-up state), by hour start."""
        return {
            hour: machines[machine_id]
            for hour, machines in self.state.rollups.machine_hours.items()
            if machine_id in machines
        }

    def held_at(self, edge: int) -> list[StateWindow | Rollup]:
        """The windows and roll-ups closed on ``edge`` still held, in the order they were made."""
        return [m for m in self.state.held if m.ts == edge]

    def _first_due(self) -> int | None:
        return min((m.ts for m in self.state.held), default=None)

    def next_seq(self) -> int:
        seq = self.state.next_seq
        self.state.next_seq += 1
        return seq

    @property
    def last_ms(self) -> int | None:
        return self.state.last_ms

    def edges(self, after_ms: int, until_ms: int) -> list[int]:
        """When every machine must be read in (after_ms, until_ms]: each window edge (exact windows, counters
        at the edge) and, unless each machine has its own, each telemetry tick."""
        t = self.timing
        times = set(edges_between(after_ms, until_ms, t.window_ms))
        if not t.telemetry_spread:
            times.update(edges_between(after_ms, until_ms, t.telemetry_interval_ms))
        return sorted(times)

    def next_sample_ms(self, machine_id: str) -> int:
        """When this machine's next telemetry sample is due."""
        return self.trackers[machine_id].state.next_telemetry_ms

    def read_times(self, after_ms: int, until_ms: int) -> list[int]:
        """The edges in (after_ms, until_ms] and ``until_ms`` itself: when to read every machine."""
        return sorted({until_ms, *self.edges(after_ms, until_ms)})

    def observe(self, at_ms: int, readings: Mapping[str, list[Reading]]) -> list[Message]:
        """Every machine read up to ``at_ms``: the changes, windows and telemetry those readings make, and the
        roll-ups of the windows every machine has now closed."""
        out: list[MachineMessage] = []
        # Only the machines read, in the gateway's order: between edges a few of a county's workshop's hundreds.
        read = sorted((m for m in readings if m in self._order), key=self._order.__getitem__)
        self._touched.update(read)
        for machine_id in read:
            tracker = self.trackers[machine_id]
            out.extend(self._counted(tracker, functools.partial(_observe_all, tracker, readings[machine_id])))
        self.state.last_ms = at_ms if self.state.last_ms is None else max(self.state.last_ms, at_ms)
        return self._sent_at(at_ms, self._with_rollups(out))

    def _sent_at(self, at_ms: int, made: list[Message]) -> list[Message]:
        """What goes out at ``at_ms``: ``made`` less the full windows and roll-ups, held until the phase after
        their edge, and the held ones whose time has come."""
        phase = self.timing.close_phase_ms
        if not phase:
            return made
        out: list[Message] = []
        for message in made:
            if isinstance(message, StateWindow | Rollup) and not message.partial:
                held = self._spread_hour(message)
                # In edge order (as a restored checkpoint has them), in the order made within an edge.
                bisect.insort(self.state.held, held, key=_held_edge)
                self._held_changed.add(held.ts)
                self._held_due = held.ts if self._held_due is None else min(self._held_due, held.ts)
            else:
                out.append(message)
        return [*out, *self._release(at_ms)]

    def _spread_hour(self, message: StateWindow | Rollup) -> StateWindow | Rollup:
        """A machine's hourly roll-up is held to an edge of its own among the ``MACHINE_HOUR_SPREAD_WINDOWS``
        after the hour's (from its machine id, the same at every start): every machine's comes due at the hour,
        and sent on one edge they doubled that minute's messages (a 40,000-machine load test's late minute). The
        report reads an hour's machine roll-ups once they are all there (dashboards/report_data.py). Its point is
        stamped at the hour's start whenever it goes; the edge it is held to is its part of the checkpoint."""
        if not isinstance(message, Rollup) or message.machine_id is None or message.window_ms != HOUR_MS:
            return message
        window = self.timing.window_ms
        later = _phase(message.machine_id, limits.MACHINE_HOUR_SPREAD_WINDOWS * window) // window * window
        return message.model_copy(update={"ts": message.ts + later}) if later else message

    def _release(self, at_ms: int, *, every: bool = False) -> list[Message]:
        """The held windows and roll-ups due by ``at_ms`` (``every``: all of them, the gateway stops), stamped
        when they go out (their edge plus the phase, at most ``at_ms``) and numbered in the order they do."""
        phase = self.timing.close_phase_ms
        if self._held_due is None or (not every and self._held_due + phase > at_ms):
            return []
        due = [m for m in self.state.held if every or m.ts + phase <= at_ms]
        self.state.held = [m for m in self.state.held if not (every or m.ts + phase <= at_ms)]
        self._held_changed.update(m.ts for m in due)
        self._held_due = self._first_due()
        out: list[Message] = []
        for message in due:
            ts = min(message.ts + phase, at_ms)
            out.append(message.model_copy(update={"ts": ts, "seq": self.next_seq()}))
            self.state.newest_ts = max(self.state.newest_ts, ts)
        return out

    def _with_rollups(self, made: list[MachineMessage], *, closing_at: int | None = None) -> list[Message]:
        windows = [m for m in made if isinstance(m, StateWindow)]
        rollups = self.state.rollups
        add_windows(rollups, windows)
        if HOUR_MS % self.timing.window_ms == 0:
            self._hours_changed.update(w.machine_id for w in windows if not w.partial)
        # Which windows every machine has closed is asked only while some closed window waits to be rolled up
        # (rarely between edges): it is a look at every machine.
        oldest = self._oldest_open_window() if rollups.windows else None
        rolled = due(rollups, window_ms=self.timing.window_ms, oldest_open_window=oldest)
        # An hour's machine roll-ups leave the state as they go out.
        self._hours_changed.update(r.machine_id for r in rolled if r.machine_id is not None)
        if closing_at is not None:
            partials = [w for w in windows if w.partial]
            rolled += partial(rollups, partials, window_ms=self.timing.window_ms, at_ms=closing_at)
        return [*self._stamped(made), *(self._rollup(r) for r in rolled)]

    def _oldest_open_window(self) -> int | None:
        return min(self._open_windows, default=None)

    def _counted(self, tracker: MachineTracker, act: Callable[[], list[MachineMessage]]) -> list[MachineMessage]:
        """What ``act`` makes of the tracker, its open window counted where it moved (every change of a
        tracker's window goes through here)."""
        opened = _open_window(tracker)
        made = act()
        now_open = _open_window(tracker)
        if opened == now_open:
            return made
        if opened is not None:
            self._open_windows[opened] -= 1
            if not self._open_windows[opened]:
                del self._open_windows[opened]
        if now_open is not None:
            self._open_windows[now_open] += 1
        return made

    def _rollup(self, rolled: Rolled) -> Rollup:
        o, totals = self.origin, rolled.totals
        message = Rollup(
            site=o.site,
            workshop=o.workshop,
            gateway_id=o.gateway_id,
            seq=self.next_seq(),
            ts=rolled.ts,
            machine_type=rolled.machine_type,
            machine_id=rolled.machine_id,
            window_start=rolled.window_start,
            window_ms=rolled.window_ms,
            machines=len(totals.machines),
            state_ms=dict(totals.state_ms),
            down_ms_by_reason=dict(totals.down_ms),
            stops_by_reason=dict(totals.stops),
            units=totals.units,
            defects=totals.defects,
            partial=rolled.partial,
        )
        self.state.newest_ts = max(self.state.newest_ts, message.ts)
        return message

    def unseen_since(self, machine_id: str, at_ms: int) -> list[Message]:
        """Nothing is known of the machine from ``at_ms`` (the gateway was down and its driver cannot tell what
        happened meanwhile): OFFLINE from then until its next reading."""
        tracker = self.trackers[machine_id]
        last = tracker.state.last
        if last is None or last.state is MachineState.OFFLINE:
            return []
        self._touched.add(machine_id)
        offline = self._counted(
            tracker, lambda: tracker.observe(replace(last, at_ms=at_ms, state=MachineState.OFFLINE, reason=None))
        )
        return self._sent_at(at_ms, self._with_rollups(offline))

    def _stamped(self, messages: list[MachineMessage]) -> list[MachineMessage]:
        for message in messages:
            self.state.newest_ts = max(self.state.newest_ts, message.ts)
        return messages

    def metas(self, ts: int) -> list[MachineMessage]:
        return self._stamped([tracker.meta(ts) for tracker in self.trackers.values()])

    def heartbeat(
        self,
        after_ms: int,
        until_ms: int,
        *,
        uptime_ms: int,
        spool: SpoolCounts,
        refused: Callable[[], dict[str, int]] = dict,
    ) -> Heartbeat | None:
        """One heartbeat for the last heartbeat edge in (after_ms, until_ms], if any. ``refused`` is asked
        only when a heartbeat is due (what the drivers refused, per machine and reason)."""
        edges = edges_between(after_ms, until_ms, self.timing.heartbeat_interval_ms)
        if not len(edges):
            return None
        o = self.origin
        beat = Heartbeat(
            site=o.site,
            workshop=o.workshop,
            gateway_id=o.gateway_id,
            seq=self.next_seq(),
            ts=edges[-1],
            boot_id=self.boot_id,
            uptime_ms=uptime_ms,
            machines=len(self.trackers),
            spool_depth=spool.depth,
            spool_dropped=spool.dropped,
            refused=refused(),
        )
        self.state.newest_ts = max(self.state.newest_ts, beat.ts)
        return beat

    def birth(self) -> GatewayStatus:
        """Online, with each machine's state re-stated. Stamped after everything sent so far, so nothing of the
        past (a death judged from this gateway's last message, a replay) can land after it."""
        states: dict[str, MachineNow] = {}
        for machine_id, tracker in self.trackers.items():
            now = tracker.now()
            if now is not None:
                states[machine_id] = now
        ts = max(self.state.last_ms or 0, self.state.newest_ts + 1)
        birth = self._status(online=True, ts=ts, seq=self.next_seq(), states=states)
        self.state.newest_ts = ts
        return birth

    def death(self, ts: int) -> GatewayStatus:
        """The gateway's own death: it stops watching at ``ts``."""
        death = self._status(online=False, ts=ts, seq=self.next_seq())
        self.state.newest_ts = max(self.state.newest_ts, ts)
        return death

    def will(self, ts: int) -> GatewayStatus:
        """The last will registered at connect (outside the sequence: the broker, not the spool, sends it)."""
        return self._status(online=False, ts=ts, seq=0, will=True)

    def close(self, at_ms: int) -> list[Message]:
        """What is held, and partial windows and roll-ups up to ``at_ms`` (the gateway stops)."""
        held = self._release(at_ms, every=True)
        out: list[MachineMessage] = []
        self._touched.update(self.trackers)
        for tracker in self.trackers.values():
            out.extend(self._counted(tracker, functools.partial(tracker.close, at_ms)))
        if out:
            self.state.last_ms = max(self.state.last_ms or at_ms, at_ms)
        return [*held, *self._with_rollups(out, closing_at=at_ms)]

    def _status(
        self, *, online: bool, ts: int, seq: int, states: dict[str, MachineNow] | None = None, will: bool = False
    ) -> GatewayStatus:
        o = self.origin
        return GatewayStatus(
            site=o.site,
            workshop=o.workshop,
            gateway_id=o.gateway_id,
            seq=seq,
            ts=ts,
            online=online,
            boot_id=self.boot_id,
            machines=self.machine_types,
            states=states or {},
            will=will,
        )
