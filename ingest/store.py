"""Storing a batch's lines (runs in the worker's writer thread; InfluxDB behind the LineWriter port).

Transient failures are retried by the policy; lines InfluxDB refuses (400) are found by bisecting and handed
back with the reason, so only they become dead letters; anything blocking (credentials, a missing database,
or transient failures beyond the policy's total time) is raised, and the caller keeps the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ftel.settings import IngestSettings
from ftel.storage.writer import LineWriter, Refusal, RetryPolicy, WriteError, write_with_retry


def write_policy(ingest: IngestSettings) -> RetryPolicy:
    """How a worker retries a batch's write: the settings' waits, and the total after which it stops taking more."""
    return RetryPolicy(
        ingest.retry_initial_s, ingest.retry_max_s, ingest.retry_exponential_base, max_total_s=ingest.retry_max_total_s
    )


@dataclass(slots=True)
class StoreOutcome:
    refused: dict[int, str] = field(default_factory=dict)  # line index -> why InfluxDB refused it
    retries: int = 0


def store_lines(
    writer: LineWriter,
    lines: list[str],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, WriteError, float], None] = lambda attempt, error, delay: None,
) -> StoreOutcome:
    outcome = StoreOutcome()

    def counted(attempt: int, error: WriteError, delay: float) -> None:
        outcome.retries += 1
        on_retry(attempt, error, delay)

    def write(first: int, end: int) -> None:
        if first >= end:
            return
        try:
            write_with_retry(writer, "\n".join(lines[first:end]).encode(), policy, on_retry=counted)
        except WriteError as error:
            if error.refusal is not Refusal.LINES:
                raise
            if end - first == 1:
                outcome.refused[first] = str(error)
                return
            middle = (first + end) // 2
            write(first, middle)
            write(middle, end)

    write(0, len(lines))
    return outcome
