"""A fixed-bucket latency histogram (pure): cheap to fill on a hot path, exact to merge across processes, and
percentiles to within one bucket. Workers publish theirs in their health; `ftel loadtest` merges them."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

# Upper bounds in milliseconds (1-2-5 steps); the last bucket takes everything beyond.
BOUNDS_MS: tuple[int, ...] = (*(m * 10**e for e in range(6) for m in (1, 2, 5) if m * 10**e <= 500_000), 600_000)


@dataclass(slots=True)
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS_MS) + 1))

    def add(self, value_ms: int) -> None:
        self.counts[bisect.bisect_left(BOUNDS_MS, value_ms)] += 1

    def merge(self, other: Histogram) -> None:
        for index, count in enumerate(other.counts):
            self.counts[index] += count

    def since(self, earlier: Histogram) -> Histogram:
        """What was added after ``earlier``, a snapshot of this histogram (counts only grow, so this is exact)."""
        return Histogram([now - then for now, then in zip(self.counts, earlier.counts, strict=True)])

    def over(self, bound_ms: int) -> int:
        """How many values were above ``bound_ms``, one of BOUNDS_MS (exact: buckets end at the bounds)."""
        if bound_ms not in BOUNDS_MS:
            raise ValueError(f"{bound_ms} ms is not a bucket bound: {BOUNDS_MS}")
        return sum(self.counts[BOUNDS_MS.index(bound_ms) + 1 :])

    def over_about(self, value_ms: int) -> int:
        """How many values were above the largest bucket bound not above ``value_ms`` (exact when it is one)."""
        return self.over(BOUNDS_MS[max(0, bisect.bisect_right(BOUNDS_MS, value_ms) - 1)])

    @property
    def total(self) -> int:
        return sum(self.counts)

    def percentile(self, p: float) -> int | None:
        """The bucket bound at or under which ``p`` (0–100) percent of the values lie; None when empty
        (the last bucket reports the largest bound: "beyond 10 minutes")."""
        total = self.total
        if not total:
            return None
        rank = p / 100 * total
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return BOUNDS_MS[min(index, len(BOUNDS_MS) - 1)]
        return BOUNDS_MS[-1]
