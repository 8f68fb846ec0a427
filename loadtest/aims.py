"""The latency aims a load test is judged by besides its data (pure): end-to-end p99 after the warm-up and alert
p99, each at most its aim. Only at real time: faster, a message's timestamp is plant time, and a load test run
faster than real time (the test suite's) is not a claim about speed."""

from __future__ import annotations

from dataclasses import dataclass

# The county's aims (docs/scale.md): a supervisor's board is at most 2 s behind the machines, and maintenance
# hears of a fault within 5 s of its condition.
LATENCY_AIM_MS = 2_000
ALERT_LATENCY_AIM_MS = 5_000


@dataclass(frozen=True, slots=True)
class Aims:
    latency_ms: int = LATENCY_AIM_MS
    alert_latency_ms: int = ALERT_LATENCY_AIM_MS


def missed_aims(
    aims: Aims, *, real_time: bool, steady_p99_ms: int | None, alert_p99_ms: int | None
) -> list[str] | None:
    """What the run missed, a sentence each; None when latency is not judged (not at real time). A figure that
    is None (a run shorter than the warm-up, no alert) cannot miss its aim."""
    if not real_time:
        return None
    missed = []
    if steady_p99_ms is not None and steady_p99_ms > aims.latency_ms:
        missed.append(
            f"end-to-end latency p99 after the warm-up {steady_p99_ms:,} ms, aim at most {aims.latency_ms:,} ms"
        )
    if alert_p99_ms is not None and alert_p99_ms > aims.alert_latency_ms:
        missed.append(f"alert latency p99 {alert_p99_ms:,} ms, aim at most {aims.alert_latency_ms:,} ms")
    return missed
