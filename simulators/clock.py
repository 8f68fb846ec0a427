"""Simulated time: ``speedup`` simulated seconds per wall second from an anchor, never ahead of real time.

Starting in the past with a large speed-up fills history quickly and then runs live at real time; every
process given the same anchor shares one clock, so a restarted gateway resumes where the plant is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class SimClock:
    start_ms: int
    speedup: float
    anchor_wall_ms: int

    @classmethod
    def starting_now(cls, start_ms: int, speedup: float) -> SimClock:
        return cls(start_ms, speedup, wall_ms())

    def now_ms(self) -> int:
        wall = wall_ms()
        simulated = self.start_ms + int((wall - self.anchor_wall_ms) * self.speedup)
        return min(simulated, wall)
