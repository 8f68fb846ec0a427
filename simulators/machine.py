"""One simulated machine: a seeded state machine that yields its life as contiguous segments.

Everything is integer milliseconds, so the simulator, the gateway and the ledger agree to the millisecond.
The same (plant seed, machine id, start) always yields the same segments, in any process.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

from ftel.contract.states import UNKNOWN_FAULT, MachineState, MachineType
from ftel.plant.calendar import MAX_DAYS_AHEAD, Calendar, default_calendar
from ftel.plant.layout import MachineSpec, Plant
from simulators.profiles import (
    HANDOVER_MS,
    MAX_UNREPORTED_STOP_MS,
    MIN_SAME_FAULT_GAP_MS,
    MIN_STOP_S,
    PROFILES,
    SPEED_PERMILLE,
    Profile,
)

# (start, end, state, reason, speed permille): one stretch of a machine's life before equal neighbours merge.
Piece = tuple[int, int, MachineState, str | None, int]
# A running stretch cut by the end of planned time: the machine stops producing and stands IDLE until the next.
OFF_SHIFT = "off_shift"
# Of the natural faults (the short ones: MAX_UNREPORTED_STOP_MS), this many in a hundred reach the gateway without a
# known code (unknown_fault).
UNREPORTED_FAULT_PERCENT = 8
NEVER_MS = MAX_DAYS_AHEAD * 24 * 3_600_000


@dataclass(frozen=True, slots=True)
class ForcedSegment:
    """A state imposed on the machine for [start_ms, end_ms): injected faults and planned work."""

    start_ms: int
    end_ms: int
    state: MachineState
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Telemetry disturbed for [start_ms, end_ms): overheating or running slow."""

    start_ms: int
    end_ms: int
    temperature_rise_c: float = 0.0
    speed_factor: float = 1.0


@dataclass(frozen=True, slots=True)
class Segment:
    start_ms: int
    end_ms: int
    state: MachineState
    reason: str | None
    speed_permille: int  # of rated speed, while RUNNING
    progress_at_start: int  # production progress, in permille-milliseconds
    service_ms_at_start: int  # running ms since the last maintenance


def stable_seed(*parts: object) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def unit_cost(machine_type: MachineType) -> int:
    """Progress (permille of rated speed × ms) that makes one unit."""
    return 3_600_000 * 1000 // PROFILES[machine_type].units_per_hour


def is_defective(seed: int, unit_index: int, rate_bp: int) -> bool:
    return stable_seed(seed, unit_index) % 10_000 < rate_bp


def count_defects(seed: int, first_unit: int, end_unit: int, rate_bp: int) -> int:
    return sum(is_defective(seed, k, rate_bp) for k in range(first_unit, end_unit))


class MachineModel:
    def __init__(
        self,
        spec: MachineSpec,
        *,
        plant_seed: int,
        start_ms: int,
        forced: tuple[ForcedSegment, ...] = (),
        anomalies: tuple[Anomaly, ...] = (),
        initial_service_ms: int | None = None,
        planned_maintenance: bool = True,
        calendar: Calendar | None = None,
    ) -> None:
        self.spec = spec
        self.profile: Profile = PROFILES[spec.type]
        self.seed = stable_seed(plant_seed, spec.id)
        self.start_ms = start_ms
        self.forced = tuple(sorted(forced, key=lambda f: f.start_ms))
        self.anomalies = anomalies
        self.unit_cost = unit_cost(spec.type)
        self.service_interval_ms = int(spec.service_interval_h * 3600 * 1000)
        # Injected service overdue: a given starting run time since maintenance, and no planned maintenance.
        self.initial_service_ms = initial_service_ms
        self.planned_maintenance = planned_maintenance
        # With a calendar the machine works only in planned time (IDLE outside it, no handover); without one it
        # works around the clock with a handover IDLE at each shift start of the default calendar.
        self.calendar = calendar
        # (asked at, the next shift start after it): the same answer for every moment before that start.
        self._handover: tuple[int, int | None] = (0, None)

    def _initial_service(self, rng: random.Random) -> int:
        drawn = rng.randrange(self.service_interval_ms)  # drawn either way: the random life stays the same
        return drawn if self.initial_service_ms is None else self.initial_service_ms

    def _ms(self, rng: random.Random, mean_s: float) -> int:
        return max(int(MIN_STOP_S * 1000), int(rng.expovariate(1.0 / mean_s) * 1000))

    def _life(self) -> Iterator[Piece]:
        """The random process with the forced segments folded in, as contiguous pieces.

        A forced segment takes over from whatever the machine was doing when it begins, and the machine runs
        again when it ends: a natural stop it interrupted is over (resuming it would be a second stop of that
        reason that nobody injected, and a burst of injected stops inside one natural stop would count as a burst
        of that stop too). Natural stops keep the bounds in simulators/profiles.py.
        """
        rng = random.Random(self.seed ^ self.start_ms)
        forced = list(self.forced)
        t = self.start_ms
        service_ms = self._initial_service(rng)
        last_fault_ms: dict[str, int] = {}
        while True:
            while forced and forced[0].start_ms <= t:
                f = forced.pop(0)
                if f.end_ms > t:  # overlapping forced segments: the earlier one wins its time
                    yield t, f.end_ms, f.state, f.reason, 0
                    if f.state is MachineState.MAINTENANCE:
                        service_ms = 0
                    elif f.state is MachineState.RUNNING:
                        service_ms += f.end_ms - t
                    t = f.end_ms
            next_forced = forced[0].start_ms if forced else None
            off_end, plan_end = self._plan(t, next_forced)
            if off_end is not None:
                # Outside planned time the machine is powered and not producing: IDLE, no reason.
                yield t, off_end, MachineState.IDLE, None, 0
                t = off_end
                continue
            # A running stretch ends at the first of: a fault, a changeover, a short idle, a handover (or the end of
            # planned time), service due.
            ends = self._stretch_ends(rng, t, service_ms, last_fault_ms, plan_end)
            end, state, reason = min(ends, key=lambda e: e[0])
            speed = rng.randint(*SPEED_PERMILLE)
            if next_forced is not None and next_forced <= end:
                yield t, next_forced, MachineState.RUNNING, None, speed
                service_ms += next_forced - t
                t = next_forced
                continue
            if end > t:
                yield t, end, MachineState.RUNNING, None, speed
            service_ms += end - t
            t = end
            if reason == OFF_SHIFT:
                continue  # the next turn of the loop stands it IDLE until planned time starts again
            if state is MachineState.DOWN and reason is not None:
                last_fault_ms[reason] = t
            elif state is MachineState.MAINTENANCE:
                service_ms = 0
            stop, reason = self._stop_ms(rng, state, reason)
            stop_end = t + stop if next_forced is None else min(t + stop, next_forced)
            reported = self._as_reported(state, reason, t, stop_end - t)
            if reported == UNKNOWN_FAULT:
                if t - last_fault_ms.get(UNKNOWN_FAULT, -MIN_SAME_FAULT_GAP_MS) < MIN_SAME_FAULT_GAP_MS:
                    reported = reason  # unknown faults keep the distance every reason keeps (the alert rules)
                else:
                    last_fault_ms[UNKNOWN_FAULT] = t
            yield t, stop_end, state, reported, 0
            t = stop_end

    def _plan(self, t: int, next_forced: int | None) -> tuple[int | None, int | None]:
        """(when the IDLE outside planned time that starts at ``t`` ends, or None when ``t`` is planned; when
        planned time ends, or None: never, or no calendar)."""
        if self.calendar is None:
            return None, None
        planned, change = self.calendar.planned_at(t)
        if planned:
            return None, change
        off_end = change if change is not None else t + NEVER_MS
        return (off_end if next_forced is None else min(off_end, next_forced)), None

    def _stretch_ends(
        self, rng: random.Random, t: int, service_ms: int, last_fault_ms: dict[str, int], plan_end: int | None
    ) -> list[tuple[int, MachineState, str | None]]:
        """When a running stretch from ``t`` would end, and how: the first of these wins."""
        p = self.profile
        ends: list[tuple[int, MachineState, str | None]] = [
            (
                _not_before(t + self._ms(rng, f.mean_between_s), last_fault_ms.get(f.reason)),
                MachineState.DOWN,
                f.reason,
            )
            for f in p.faults
        ]
        ends.append((t + self._ms(rng, p.mean_between_setups_s), MachineState.SETUP, None))
        ends.append((t + self._ms(rng, p.mean_between_idles_s), MachineState.IDLE, None))
        if self.planned_maintenance:
            # Due exactly when the run-hours reach the interval, never past it (then the machine is overdue).
            ends.append((t + max(0, self.service_interval_ms - service_ms), MachineState.MAINTENANCE, None))
        if self.calendar is None:
            handover = self._next_handover(t)
            if handover is not None:
                ends.append((handover, MachineState.IDLE, "handover"))
        elif plan_end is not None:
            ends.append((plan_end, MachineState.IDLE, OFF_SHIFT))
        return ends

    def _next_handover(self, t: int) -> int | None:
        asked, start = self._handover
        if start is None or not asked <= t < start:
            start = default_calendar().next_shift_start(t)
            self._handover = (t, start)
        return start

    def _as_reported(self, state: MachineState, reason: str | None, at_ms: int, stop_ms: int) -> str | None:
        """Some faults reach the gateway as a code its table lacks (an older controller, a stack-light tap that
        only knows red): DOWN with unknown_fault, for an operator to explain. Drawn from a hash of the moment,
        not from the machine's random stream, so every time and state stays as it was; only stops shorter than
        MAX_UNREPORTED_STOP_MS, so that none outlasts the alert rules' limit for a reason they do not list."""
        if (
            state is MachineState.DOWN
            and stop_ms < MAX_UNREPORTED_STOP_MS
            and stable_seed(self.seed, "unreported", at_ms) % 100 < UNREPORTED_FAULT_PERCENT
        ):
            return UNKNOWN_FAULT
        return reason

    def _stop_ms(self, rng: random.Random, state: MachineState, reason: str | None) -> tuple[int, str | None]:
        """How long a natural stop lasts, and the reason it reports (a handover is a plain IDLE)."""
        p = self.profile
        if state is MachineState.DOWN:
            fault = next(f for f in p.faults if f.reason == reason)
            return min(self._ms(rng, fault.mean_repair_s), fault.max_repair_ms), reason
        if state is MachineState.SETUP:
            return self._ms(rng, p.mean_setup_s), None
        if state is MachineState.MAINTENANCE:
            return p.maintenance_s * 1000, None
        if reason == "handover":
            return HANDOVER_MS, None
        return self._ms(rng, p.mean_idle_s), None

    def segments(self) -> Iterator[Segment]:
        """The machine's life from ``start_ms`` on, with equal neighbours merged (no zero-length states)."""
        progress = 0
        service_ms = 0
        pending: Piece | None = None
        initial_service = self._initial_service(random.Random(self.seed ^ self.start_ms))
        service_ms = initial_service
        for piece in self._life():
            if pending is None:
                pending = piece
                continue
            if piece[2] is pending[2] and piece[3] == pending[3] and piece[2] is not MachineState.RUNNING:
                pending = (pending[0], piece[1], pending[2], pending[3], pending[4])
                continue
            if piece[0] >= piece[1]:
                continue
            segment = Segment(pending[0], pending[1], pending[2], pending[3], pending[4], progress, service_ms)
            yield segment
            progress = self.progress_at(segment, segment.end_ms)
            service_ms = self.service_at(segment, segment.end_ms)
            pending = piece

    def progress_at(self, segment: Segment, at_ms: int) -> int:
        if segment.state is MachineState.RUNNING:
            return segment.progress_at_start + (at_ms - segment.start_ms) * segment.speed_permille
        return segment.progress_at_start

    def service_at(self, segment: Segment, at_ms: int) -> int:
        if segment.state is MachineState.RUNNING:
            return segment.service_ms_at_start + (at_ms - segment.start_ms)
        if segment.state is MachineState.MAINTENANCE:
            return 0
        return segment.service_ms_at_start

    def units_at(self, segment: Segment, at_ms: int) -> int:
        return self.progress_at(segment, at_ms) // self.unit_cost

    def anomaly_at(self, at_ms: int) -> Anomaly | None:
        return next((a for a in self.anomalies if a.start_ms <= at_ms < a.end_ms), None)


def _not_before(at_ms: int, last_same_ms: int | None) -> int:
    """A fault drawn for ``at_ms``, held back to keep its distance from the last stop of the same reason."""
    return at_ms if last_same_ms is None else max(at_ms, last_same_ms + MIN_SAME_FAULT_GAP_MS)


def plant_models(
    plant: Plant, *, start_ms: int, workshop: str | None = None, calendar: Calendar | None = None
) -> list[tuple[str, MachineModel]]:
    """(workshop id, model) for every machine of the plant (or of one workshop), with injected faults; with a
    calendar, machines work only in its planned time."""
    forced: dict[str, list[ForcedSegment]] = {}
    for f in plant.injected_states:
        segment = ForcedSegment(start_ms + f.at_s * 1000, start_ms + (f.at_s + f.duration_s) * 1000, f.state, f.reason)
        forced.setdefault(f.machine_id, []).append(segment)
    anomalies: dict[str, list[Anomaly]] = {}
    for a in plant.injected_anomalies:
        anomaly = Anomaly(
            start_ms + a.at_s * 1000,
            start_ms + (a.at_s + a.duration_s) * 1000,
            a.temperature_rise_c,
            a.speed_factor,
        )
        anomalies.setdefault(a.machine_id, []).append(anomaly)
    overdue = {o.machine_id: int(o.run_hours * 3_600_000) for o in plant.injected_service_overdue}
    return [
        (
            w.id,
            MachineModel(
                spec,
                plant_seed=plant.seed,
                start_ms=start_ms,
                forced=tuple(forced.get(spec.id, ())),
                anomalies=tuple(anomalies.get(spec.id, ())),
                initial_service_ms=overdue.get(spec.id),
                planned_maintenance=spec.id not in overdue,
                calendar=calendar,
            ),
        )
        for w in plant.workshops
        if workshop is None or w.id == workshop
        for spec in w.machines
    ]
