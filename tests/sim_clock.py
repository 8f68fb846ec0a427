"""Simulated time for the gateways of one test run, paced together so that what the run simulates does not
depend on how loaded the machine is.

A plain SimClock gives each gateway the plant time that goes with the wall clock. Under load one gateway's
loop can lag the others by a few hundred milliseconds, which at a speed-up of 300 to 1000 is minutes of plant
time: its heartbeats look late to whoever watches the stream (a false "gateway silent"), and its next tick
covers minutes at once (its messages come in a lump, and what they show is seen late). A PacedClock gives a
gateway the same time as the SimClock, except:

* never more than ``max_step_ms`` past the time it gave before, so no tick covers more than a heartbeat
  interval (a gateway behind the SimClock catches up in more ticks, not in bigger ones);
* never more than ``max_lead_ms`` ahead of the slowest gateway of the run, which the gateways tell each other
  through a small file of progress slots (threads and processes alike); a gateway that lags holds the others
  back instead of falling behind them, so the run takes a little longer in wall time and is the same in plant
  time;
* never past ``hold_at_ms`` when given: the test decides what happens there (say, kill the gateway).
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from simulators.clock import SimClock

# One heartbeat interval (10 s): each tick's messages are at most that far apart, and the gateways of a run at
# most that far apart, well inside the 45 s after which the alert engine calls a gateway silent.
MAX_STEP_MS = 10_000
MAX_LEAD_MS = 10_000
_SLOT = struct.Struct("<q")
# A slot that paces nobody: its gateway is not running (killed, or not started yet), and nothing waits for it.
IDLE = -1


@dataclass(frozen=True)
class Pace:
    """The progress of each gateway of a run: slot i holds the plant time gateway i was last given (it sends
    nothing older after that), or IDLE."""

    path: Path
    slots: int

    @classmethod
    def create(cls, path: Path, *, slots: int, start_ms: int) -> Pace:
        """Every gateway at the start: none runs ahead before the slowest to start (a process) has begun."""
        path.write_bytes(_SLOT.pack(start_ms) * slots)
        return cls(path, slots)

    def open(self) -> _Slots:
        return _Slots(self)

    def set(self, slot: int, value_ms: int) -> None:
        with self.open() as slots:
            slots.write(slot, value_ms)

    def get(self, slot: int) -> int:
        with self.open() as slots:
            return slots.read()[slot]


class _Slots:
    """The slots file, locked while open (flock: between threads with their own descriptors and processes)."""

    def __init__(self, pace: Pace) -> None:
        self._pace = pace
        self._fd = os.open(pace.path, os.O_RDWR)

    def __enter__(self) -> _Slots:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)

    def read(self) -> list[int]:
        data = os.pread(self._fd, _SLOT.size * self._pace.slots, 0)
        return [value for (value,) in _SLOT.iter_unpack(data)]

    def write(self, slot: int, value_ms: int) -> None:
        os.pwrite(self._fd, _SLOT.pack(value_ms), slot * _SLOT.size)


class PacedClock:
    """``now_ms`` for one gateway of a paced run (see the module docstring); monotonic."""

    def __init__(
        self,
        clock: SimClock,
        *,
        pace: Pace | None = None,
        slot: int = 0,
        hold_at_ms: int | None = None,
        max_step_ms: int = MAX_STEP_MS,
        max_lead_ms: int = MAX_LEAD_MS,
    ) -> None:
        self._clock = clock
        self._pace = pace
        self._slot = slot
        self._hold_at_ms = hold_at_ms
        self._max_step_ms = max_step_ms
        self._max_lead_ms = max_lead_ms
        given = pace.get(slot) if pace is not None else IDLE
        self._given: int | None = given if given != IDLE else None

    def now_ms(self) -> int:
        target = self._clock.now_ms()
        if self._given is not None:
            target = min(target, self._given + self._max_step_ms)
        if self._hold_at_ms is not None:
            target = min(target, self._hold_at_ms)
        if self._pace is None:
            return self._give(target)
        with self._pace.open() as slots:
            others = [v for i, v in enumerate(slots.read()) if i != self._slot and v != IDLE]
            if others:
                target = min(target, min(others) + self._max_lead_ms)
            given = self._give(target)
            slots.write(self._slot, given)
        return given

    def _give(self, target_ms: int) -> int:
        given = target_ms if self._given is None else max(self._given, target_ms)
        self._given = given
        return given
