"""The JSON summary of a load test and what each key means (pure). docs/scale.md lists the same keys; a unit
test keeps the two and the builder in step."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ftel.histogram import Histogram
from loadtest.aims import Aims, missed_aims
from loadtest.faults import InjectedFault
from loadtest.monitor import AlertSeen
from loadtest.plan import ClockPlan
from loadtest.resources import ComponentUsage
from loadtest.verdict import Verdict

SCHEMA_VERSION = 1
# The latency_steady_* figures leave out the start's burst and the first window edges, and the stop: every gateway
# closing its machines' partial windows at the plant's end, at the same instant (latency_stop_*).
LATENCY_WARMUP_MS = 3 * 60_000
COMPONENTS = ("gateways", "ingest", "alerts", "mosquitto", "influxdb", "loadtest")

SUMMARY_KEYS: dict[str, str] = {
    "schema_version": "version of this layout (1)",
    "passed": "true when lost, doubled and wrong are 0, every injected fault raised its alert, every gateway "
    "process ended cleanly and, at real time, no latency aim was missed (the exit code says the same: 0 passed, "
    "1 failed)",
    "target": "local (Mosquitto and InfluxDB started by the load test) or settings (the broker and InfluxDB the "
    "settings name)",
    "machines": "simulated machines",
    "workshops": "workshops (one gateway each)",
    "gateway_processes": "`ftel simulate run` processes the gateways ran in",
    "ingest_workers": "ingest worker processes",
    "speedup": "plant seconds per wall second (1: real time)",
    "duration_s": "plant time simulated, seconds (whole windows)",
    "wall_s": "wall time from the plant's start until the last gateway had drained, seconds",
    "start_ms": "plant time of the start, epoch ms",
    "end_ms": "plant time of the end, epoch ms",
    "messages": "data messages the ingest workers received (a redelivery counts again)",
    "points": "points the ingest workers wrote (their health points included)",
    "dead_letters": "messages the workers rejected",
    "messages_per_s": "messages / wall_s",
    "points_per_s": "points / wall_s",
    "lost": "windows and state changes in the ledger and not in InfluxDB",
    "doubled": "windows and state changes in InfluxDB beyond the ledger's",
    "wrong": "(machine, quantity) totals that differ from the ledger: ms per state, stops and downtime per "
    "reason, units, defects",
    "machines_exact": "machines whose every figure equals the ledger",
    "windows_expected": "machine windows in the ledger",
    "windows_stored": "machine windows in InfluxDB",
    "state_changes_expected": "state changes in the ledger",
    "state_changes_stored": "state changes in InfluxDB",
    "differences": "the first differences found, as text (empty when exact)",
    "latency_meaningful": "true at real time: only then is a message's timestamp the wall time it was made",
    "latency_samples": "messages in the merged latency histogram",
    "latency_p50_ms": "end-to-end latency, machine timestamp to stored point, 50th percentile (upper bound of "
    "the histogram bucket; null unless latency_meaningful)",
    "latency_p95_ms": "the same, 95th percentile",
    "latency_p99_ms": "the same, 99th percentile",
    "latency_warmup_s": "plant seconds at the start left out of the latency_steady_* figures: the start's burst "
    "(every machine's first reading, meta and birth at once) and the first window edges",
    "latency_steady_samples": "messages stored after the warm-up and before the plant's end (from the workers' "
    "health just after the one and just before the other, which they publish every few seconds)",
    "latency_steady_p50_ms": "end-to-end latency after the warm-up and before the stop, 50th percentile (null unless "
    "latency_meaningful)",
    "latency_steady_p95_ms": "the same, 95th percentile",
    "latency_steady_p99_ms": "the same, 99th percentile",
    "latency_stop_samples": "messages stored from the plant's end on: every gateway closes its machines' partial "
    "windows and says it stops at the same instant (a county's gateways do not stop together)",
    "latency_stop_p99_ms": "their end-to-end latency, 99th percentile (null unless latency_meaningful)",
    "alerts": "alerts of the plant's site that fired during the run (first firing of each)",
    "alert_latency_p50_ms": "alert latency, the condition becoming true to the alert received on its topic, wall "
    "ms (plant time mapped to wall time by the run's clock), 50th percentile; null without alerts",
    "alert_latency_p95_ms": "the same, 95th percentile",
    "alert_latency_p99_ms": "the same, 99th percentile",
    "alert_latency_max_ms": "the same, the largest",
    "latency_aim_ms": "the aim for latency_steady_p99_ms: at most this (--latency-aim-s)",
    "alert_latency_aim_ms": "the aim for alert_latency_p99_ms: at most this (--alert-latency-aim-s)",
    "aims_judged": "true at real time: only then are the latency aims part of the verdict",
    "aims_missed": "the latency aims the run missed, a sentence each (empty when none or not judged)",
    "faults_injected": "injected faults (long DOWN, burst of stops, overheating)",
    "faults_alerted": "injected faults whose alert fired",
    "faults": "each injected fault: kind, rule, workshop, machine_id, at_s, alerted, latency_ms",
    "faults_skipped": "kinds of fault left out and why (the run was too short for the rule's limit)",
    "unexpected_alerts": "machine alerts that no injected fault explains",
    "unconfirmed_peak": "the highest sum of the gateways' unconfirmed messages (heartbeats' spool_depth)",
    "worker_lag_peak_ms": "the highest write lag a worker reported (its batch's first message to stored)",
    "gateway_processes_failed": "gateway processes that exited with an error",
    "components": "per component (gateways, ingest, alerts, mosquitto, influxdb, loadtest): processes, cpu_s, "
    "cores_mean (cpu_s over the wall seconds counted), cpu_peak_percent, peak_rss_mb, total_peak_rss_mb, "
    "machines_per_core (null where not measured: services the load test did not start)",
    "timeline": "samples over the run: t_s, plant_ms, messages, points, messages_per_s, points_per_s, "
    "unconfirmed, worker_lag_ms, late (messages stored since the previous sample later than the latency aim; "
    "null faster than real time), "
    "cpu_percent and rss_mb per component",
}
COMPONENT_KEYS = (
    "processes",
    "cpu_s",
    "cores_mean",
    "cpu_peak_percent",
    "peak_rss_mb",
    "total_peak_rss_mb",
    "machines_per_core",
)


def percentile(values: Sequence[int], p: float) -> int | None:
    """Nearest-rank percentile (0-100); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class FaultOutcome:
    fault: InjectedFault
    alert: AlertSeen | None
    latency_ms: int | None


def fault_outcomes(
    faults: Sequence[InjectedFault], alerts: Mapping[str, AlertSeen], clock: ClockPlan
) -> list[FaultOutcome]:
    """Each injected fault with the first alert of its rule about its machine after it began."""
    out = []
    for fault in faults:
        begun = clock.start_ms + fault.at_s * 1000
        matching = sorted(
            (
                seen
                for seen in alerts.values()
                if seen.record.rule == fault.rule
                and seen.record.subject == fault.machine_id
                and seen.record.condition_ms >= begun
            ),
            key=lambda seen: seen.record.condition_ms,
        )
        first = matching[0] if matching else None
        latency = None if first is None else first.received_ms - clock.wall_of(first.record.condition_ms)
        out.append(FaultOutcome(fault, first, latency))
    return out


def alert_latencies(alerts: Mapping[str, AlertSeen], clock: ClockPlan) -> list[int]:
    """Wall ms from each alert's condition to its arrival, for alerts whose condition fell in the run."""
    return [
        seen.received_ms - clock.wall_of(seen.record.condition_ms)
        for seen in alerts.values()
        if clock.start_ms <= seen.record.condition_ms
    ]


@dataclass(frozen=True)
class RunFacts:
    """Everything a finished run measured."""

    target: str
    machines: int
    workshops: int
    gateway_processes: int
    gateway_processes_failed: int
    ingest_workers: int
    clock: ClockPlan
    wall_s: float
    messages: int
    points: int
    dead_letters: int
    verdict: Verdict
    latency: Histogram
    latency_at_warmup: Histogram | None  # the merged histogram when the warm-up ended (None: it never did)
    latency_before_stop: Histogram | None  # the merged histogram last sampled before the plant's end (None: never)
    alerts: Mapping[str, AlertSeen]
    faults: Sequence[InjectedFault]
    faults_skipped: Sequence[str]
    usage: Mapping[str, ComponentUsage]
    unconfirmed_peak: int
    worker_lag_peak_ms: int
    timeline: Sequence[Mapping[str, Any]] = field(default_factory=list)
    aims: Aims = field(default_factory=Aims)


def _component(usage: ComponentUsage | None, wall_s: float, machines: int) -> dict[str, Any]:
    if usage is None:
        return dict.fromkeys(COMPONENT_KEYS)
    seconds = usage.watched_s or wall_s
    cores = usage.cpu_s / seconds if seconds > 0 else 0.0
    return {
        "processes": usage.processes,
        "cpu_s": usage.cpu_s,
        "cores_mean": round(cores, 3),
        "cpu_peak_percent": usage.peak_cpu_percent,
        "peak_rss_mb": usage.peak_rss_mb,
        "total_peak_rss_mb": usage.total_peak_rss_mb,
        "machines_per_core": round(machines / cores) if cores > 0 else None,
    }


def build_summary(facts: RunFacts) -> dict[str, Any]:
    clock, verdict = facts.clock, facts.verdict
    outcomes = fault_outcomes(facts.faults, facts.alerts, clock)
    explained = {o.alert.record.alert_id for o in outcomes if o.alert is not None}
    unexpected = [
        a for a in facts.alerts.values() if a.record.subject_type == "machine" and a.record.alert_id not in explained
    ]
    alert_ms = alert_latencies(facts.alerts, clock)
    meaningful = clock.real_time and facts.latency.total > 0
    alerted = sum(o.alert is not None for o in outcomes)
    wall = facts.wall_s

    def rate(n: int) -> float:
        return round(n / wall, 1) if wall > 0 else 0.0

    def latency(p: float) -> int | None:
        return facts.latency.percentile(p) if meaningful else None

    before_stop = facts.latency if facts.latency_before_stop is None else facts.latency_before_stop
    steady = before_stop.since(facts.latency_at_warmup) if facts.latency_at_warmup is not None else None
    stop = facts.latency.since(before_stop)

    def steady_latency(p: float) -> int | None:
        return steady.percentile(p) if meaningful and steady is not None else None

    missed = missed_aims(
        facts.aims,
        real_time=clock.real_time,
        steady_p99_ms=steady_latency(99),
        alert_p99_ms=percentile(alert_ms, 99),
    )
    passed = verdict.passed and alerted == len(outcomes) and facts.gateway_processes_failed == 0 and not missed

    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "passed": passed,
        "target": facts.target,
        "machines": facts.machines,
        "workshops": facts.workshops,
        "gateway_processes": facts.gateway_processes,
        "ingest_workers": facts.ingest_workers,
        "speedup": clock.speedup,
        "duration_s": clock.duration_ms // 1000,
        "wall_s": round(wall, 1),
        "start_ms": clock.start_ms,
        "end_ms": clock.end_ms,
        "messages": facts.messages,
        "points": facts.points,
        "dead_letters": facts.dead_letters,
        "messages_per_s": rate(facts.messages),
        "points_per_s": rate(facts.points),
        "lost": verdict.lost,
        "doubled": verdict.doubled,
        "wrong": verdict.wrong,
        "machines_exact": verdict.machines_exact,
        "windows_expected": verdict.windows_expected,
        "windows_stored": verdict.windows_stored,
        "state_changes_expected": verdict.changes_expected,
        "state_changes_stored": verdict.changes_stored,
        "differences": list(verdict.differences),
        "latency_meaningful": meaningful,
        "latency_samples": facts.latency.total,
        "latency_p50_ms": latency(50),
        "latency_p95_ms": latency(95),
        "latency_p99_ms": latency(99),
        "latency_warmup_s": LATENCY_WARMUP_MS // 1000,
        "latency_steady_samples": steady.total if steady is not None else 0,
        "latency_steady_p50_ms": steady_latency(50),
        "latency_steady_p95_ms": steady_latency(95),
        "latency_steady_p99_ms": steady_latency(99),
        "latency_stop_samples": stop.total,
        "latency_stop_p99_ms": stop.percentile(99) if meaningful and stop.total else None,
        "alerts": len(facts.alerts),
        "alert_latency_p50_ms": percentile(alert_ms, 50),
        "alert_latency_p95_ms": percentile(alert_ms, 95),
        "alert_latency_p99_ms": percentile(alert_ms, 99),
        "alert_latency_max_ms": max(alert_ms) if alert_ms else None,
        "latency_aim_ms": facts.aims.latency_ms,
        "alert_latency_aim_ms": facts.aims.alert_latency_ms,
        "aims_judged": missed is not None,
        "aims_missed": missed or [],
        "faults_injected": len(outcomes),
        "faults_alerted": alerted,
        "faults": [
            {
                "kind": o.fault.kind.value,
                "rule": o.fault.rule,
                "workshop": o.fault.workshop,
                "machine_id": o.fault.machine_id,
                "at_s": o.fault.at_s,
                "alerted": o.alert is not None,
                "latency_ms": o.latency_ms,
            }
            for o in outcomes
        ],
        "faults_skipped": list(facts.faults_skipped),
        "unexpected_alerts": len(unexpected),
        "unconfirmed_peak": facts.unconfirmed_peak,
        "worker_lag_peak_ms": facts.worker_lag_peak_ms,
        "gateway_processes_failed": facts.gateway_processes_failed,
        "components": {name: _component(facts.usage.get(name), wall, facts.machines) for name in COMPONENTS},
        "timeline": list(facts.timeline),
    }
    return summary
