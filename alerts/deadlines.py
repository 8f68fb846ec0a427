"""Subjects waiting for a moment on some clock (pure): a heap of deadlines per clock.

The alert engine judges a machine on its gateway's time and a gateway on the engine's clock, so each clock has
its own heap. A subject waits for one moment at a time, the earliest it asked for: waking a subject early is
harmless (it is judged again, finds nothing new and asks for its next moment), waking it late is not. So a
subject whose moment moves later (a gateway heard from again, its silence deadline pushed on) keeps its earlier
entry instead of adding one per message, and an entry that is no longer the subject's moment is skipped when it
comes up.
"""

from __future__ import annotations

import heapq

# Heaps are rebuilt without their skipped entries once these outnumber the live ones by this factor.
COMPACT_FACTOR = 4
COMPACT_MIN = 1024


class Deadlines:
    def __init__(self) -> None:
        self._heaps: dict[str, list[tuple[int, str]]] = {}
        self._moment: dict[str, tuple[str, int]] = {}  # subject -> (clock, the moment it waits for)
        self._live: dict[str, int] = {}  # clock -> subjects waiting on it

    def __len__(self) -> int:
        """Subjects waiting."""
        return len(self._moment)

    def wake(self, subject: str, clock: str, at_ms: int) -> None:
        """Wake ``subject`` once ``clock`` reaches ``at_ms`` (or earlier, if it already waits for an earlier
        moment on the same clock)."""
        current = self._moment.get(subject)
        if current is not None:
            if current[0] == clock and current[1] <= at_ms:
                return
            self._live[current[0]] -= 1
        self._moment[subject] = (clock, at_ms)
        live = self._live[clock] = self._live.get(clock, 0) + 1
        heap = self._heaps.setdefault(clock, [])
        heapq.heappush(heap, (at_ms, subject))
        if len(heap) > COMPACT_MIN and len(heap) > COMPACT_FACTOR * live:
            self._compact(clock)

    def cancel(self, subject: str) -> None:
        current = self._moment.pop(subject, None)
        if current is not None:
            self._live[current[0]] -= 1

    def moment(self, subject: str) -> tuple[str, int] | None:
        """(clock, moment) the subject waits for, if any."""
        return self._moment.get(subject)

    def due(self, clock: str, now_ms: int) -> list[str]:
        """The subjects whose moment on ``clock`` has come (at or before ``now_ms``); they wait no more."""
        heap = self._heaps.get(clock)
        out: list[str] = []
        while heap and heap[0][0] <= now_ms:
            at_ms, subject = heapq.heappop(heap)
            if self._moment.get(subject) == (clock, at_ms):
                del self._moment[subject]
                out.append(subject)
        if out:
            self._live[clock] -= len(out)
        return out

    def _compact(self, clock: str) -> None:
        heap = [(at, s) for at, s in self._heaps[clock] if self._moment.get(s) == (clock, at)]
        heapq.heapify(heap)
        self._heaps[clock] = heap
