"""What a load test runs, decided before anything starts (pure): the plant clock and the gateway processes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from loadtest.errors import LoadTestError

# Simulated machines one `ftel simulate run` process carries at real time with room to spare (one thread ticks
# its gateways; each gateway's spool commit is a synchronous SQLite write). Measured in docs/scale.md.
MACHINES_PER_GATEWAY_PROCESS = 10_000
# Processes need this long to import and connect before the plant's clock starts.
DEFAULT_LEAD_MS = 8_000
# And this much CPU per simulated machine before their first message (the plant's drivers, the spools, the first
# readings): bench/simulate.py's "CPU until then", 6-8 s per 10,000 machines, rounded up.
START_CPU_MS_PER_MACHINE = 1.0


@dataclass(frozen=True, slots=True)
class ClockPlan:
    """One plant clock for every gateway process: plant time ``start_ms`` at wall time ``anchor_ms``, then
    ``speedup`` plant ms per wall ms, until ``end_ms``. At real time plant time is wall time, so a message's
    timestamp is when it happened and latencies measured from it are real."""

    start_ms: int
    anchor_ms: int
    end_ms: int
    speedup: float

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    @property
    def real_time(self) -> bool:
        return self.speedup == 1.0

    @property
    def wall_end_ms(self) -> int:
        return self.wall_of(self.end_ms)

    def wall_of(self, plant_ms: int) -> int:
        """The wall-clock ms at which the plant clock shows ``plant_ms``."""
        return self.anchor_ms + round((plant_ms - self.start_ms) / self.speedup)

    def plant_of(self, wall_ms: int) -> int:
        return self.start_ms + round((wall_ms - self.anchor_ms) * self.speedup)


def whole_windows(duration_ms: int, window_ms: int) -> int:
    """``duration_ms`` rounded up to whole windows (at least one), so every window the ledger has is closed."""
    if duration_ms <= 0:
        raise LoadTestError(f"the duration must be positive, not {duration_ms} ms")
    return max(1, math.ceil(duration_ms / window_ms)) * window_ms


def clock_plan(
    *, now_ms: int, duration_ms: int, speedup: float, window_ms: int, lead_ms: int = DEFAULT_LEAD_MS
) -> ClockPlan:
    """The clock of a run of ``duration_ms`` plant time that starts ``lead_ms`` from ``now_ms`` (or at the next
    window edge after that at real time: the plant starts on a window edge, as the ledger's windows do).

    A plant clock never runs ahead of the wall clock, so a run faster than real time must start in the past,
    early enough that it ends no later than the wall clock: then it is never held back."""
    if speedup < 1:
        raise LoadTestError(f"--speedup must be at least 1 (real time), not {speedup:g}")
    duration_ms = whole_windows(duration_ms, window_ms)
    earliest = now_ms + lead_ms
    if speedup == 1:
        start = -(-earliest // window_ms) * window_ms
        return ClockPlan(start, start, start + duration_ms, 1.0)
    start = (earliest - duration_ms) // window_ms * window_ms - window_ms
    return ClockPlan(start, earliest, start + duration_ms, speedup)


def start_lead_ms(machines: int, cores: int) -> int:
    """How long before the plant's clock starts the gateway processes must start: the fixed lead, and their start's
    CPU shared by this machine's cores. With the fixed lead alone, 60,000 machines on 2 cores began half a minute
    behind the clock, and what they sent to catch up kept the pipeline minutes behind."""
    return DEFAULT_LEAD_MS + math.ceil(machines * START_CPU_MS_PER_MACHINE / max(1, cores))


def auto_gateway_processes(machines: int, workshops: int) -> int:
    """Enough processes for the plant at real time, never more than one per workshop."""
    return max(1, min(workshops, math.ceil(machines / MACHINES_PER_GATEWAY_PROCESS)))


@dataclass(frozen=True, slots=True)
class GatewayShare:
    """The workshops one gateway process runs."""

    index: int
    workshops: tuple[str, ...]
    machines: int

    @property
    def name(self) -> str:
        return f"gateways-{self.index + 1}"


def share_workshops(workshops: Sequence[tuple[str, int]], processes: int) -> list[GatewayShare]:
    """(workshop id, machines) split into ``processes`` shares of about equal machines (largest first onto the
    lightest share); each share keeps the plant's order of workshops. No share is empty."""
    if processes < 1:
        raise LoadTestError(f"gateway processes must be at least 1, not {processes}")
    count = min(processes, len(workshops))
    if count == 0:
        raise LoadTestError("the plant has no workshops")
    loads = [0] * count
    members: list[list[int]] = [[] for _ in range(count)]
    for position in sorted(range(len(workshops)), key=lambda i: (-workshops[i][1], i)):
        lightest = min(range(count), key=lambda s: (loads[s], s))
        loads[lightest] += workshops[position][1]
        members[lightest].append(position)
    return [
        GatewayShare(index, tuple(workshops[i][0] for i in sorted(share)), loads[index])
        for index, share in enumerate(members)
    ]
