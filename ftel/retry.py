"""The one retry policy of every loop that waits before trying again (writes, webhooks, reconnects, restarts).

Like influxdb-client's ``WritesRetry``: exponential from ``initial_s`` by ``exponential_base`` up to ``max_s``,
each delay stretched by up to ``jitter`` so that many clients do not retry in step, at least what the other
side asked for (HTTP ``Retry-After``), and an optional cap on the total time after which the caller gives up
and says so. The random source is a parameter, so tests can fix it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_s: float = 0.2
    max_s: float = 10.0
    exponential_base: float = 2.0
    jitter: float = 0.2  # each delay is stretched by up to this fraction, so clients do not retry in step
    max_total_s: float | None = None  # None: retry until it passes

    def backoff(self, attempt: int, draw: Callable[[], float] = random.random) -> float:
        """The wait before attempt ``attempt + 1`` (0: after the first failure)."""
        return min(self.max_s, self.initial_s * self.exponential_base**attempt) * (1 + self.jitter * draw())

    def delay(
        self, attempt: int, *, retry_after_s: float | None = None, draw: Callable[[], float] = random.random
    ) -> float:
        """The backoff, but never less than what the other side asked for."""
        return max(self.backoff(attempt, draw), retry_after_s or 0.0)

    def spent(self, started: float, now: float, delay: float) -> bool:
        """Whether waiting ``delay`` more would pass the cap on the total time (then the caller gives up)."""
        return self.max_total_s is not None and now + delay - started > self.max_total_s


def parse_retry_after(value: str | None) -> float | None:
    """An HTTP ``Retry-After`` header in seconds; only the delta-seconds form (InfluxDB, the proxies in front of
    it and webhook receivers send that), None when absent or unreadable."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
