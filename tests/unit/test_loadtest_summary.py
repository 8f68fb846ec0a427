"""The load test's JSON summary: every documented key and only those, figures computed as documented (pure)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from alerts.lifecycle import AlertRecord, Status
from ftel.histogram import BOUNDS_MS, Histogram
from loadtest.aims import Aims
from loadtest.faults import FaultKind, InjectedFault
from loadtest.health import merge_latency, parse_health
from loadtest.monitor import AlertSeen
from loadtest.plan import ClockPlan
from loadtest.resources import ComponentUsage
from loadtest.summary import COMPONENT_KEYS, COMPONENTS, SUMMARY_KEYS, RunFacts, build_summary, percentile
from loadtest.verdict import Verdict

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scale.md"
START = 1_800_000_000_000


def alert(alert_id: str, rule: str, subject: str, condition_ms: int, *, subject_type: str = "machine") -> AlertRecord:
    return AlertRecord(
        alert_id=alert_id,
        status=Status.FIRING,
        rule=rule,
        severity="critical",
        site="s",
        workshop="ws001",
        subject=subject,
        subject_type=subject_type,
        machine_type="carding",
        detail="",
        summary="",
        started_ms=condition_ms,
        condition_ms=condition_ms,
        fired_ms=condition_ms,
        value=1.0,
        changed_ms=condition_ms,
    )


def verdict(*, wrong: int = 0) -> Verdict:
    return Verdict(10, 10 - bool(wrong), 100, 100, 0, 0, 20, 20, 0, 0, wrong, ("M1 units: ledger 2 stored 1",) * wrong)


def facts(
    clock: ClockPlan,
    *,
    wrong: int = 0,
    alerts: dict[str, AlertSeen] | None = None,
    at_warmup: Histogram | None = None,
) -> RunFacts:
    latency = Histogram()
    for ms in (20, 40, 40, 300):
        latency.add(ms)
    return RunFacts(
        target="local",
        machines=1000,
        workshops=2,
        gateway_processes=1,
        gateway_processes_failed=0,
        ingest_workers=2,
        clock=clock,
        wall_s=100.0,
        messages=5_000,
        points=6_000,
        dead_letters=0,
        verdict=verdict(wrong=wrong),
        latency=latency,
        latency_at_warmup=at_warmup,
        latency_before_stop=None,
        alerts=alerts or {},
        faults=[InjectedFault(FaultKind.OVERHEAT, "overheat", "ws001", "M7", 60, 240)],
        faults_skipped=["long_down: too short"],
        usage={"ingest": ComponentUsage(processes=2, cpu_s=50.0, peak_rss_mb=120.0, total_peak_rss_mb=230.0)},
        unconfirmed_peak=12,
        worker_lag_peak_ms=300,
        timeline=[],
    )


REAL_TIME = ClockPlan(START, START, START + 600_000, 1.0)


def test_the_summary_has_every_documented_key_and_no_other() -> None:
    summary = build_summary(facts(REAL_TIME))
    assert set(summary) == set(SUMMARY_KEYS)
    assert set(summary["components"]) == set(COMPONENTS)
    for figures in summary["components"].values():
        assert set(figures) == set(COMPONENT_KEYS)
    json.dumps(summary)  # plain JSON


def test_docs_scale_md_documents_every_key() -> None:
    text = DOCS.read_text()
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", text, flags=re.MULTILINE))
    assert set(SUMMARY_KEYS) | set(COMPONENT_KEYS) <= documented


def test_at_real_time_latency_percentiles_come_from_the_merged_histogram() -> None:
    summary = build_summary(facts(REAL_TIME))
    assert summary["latency_meaningful"]
    assert (summary["latency_p50_ms"], summary["latency_p99_ms"]) == (50, 500)
    assert summary["latency_samples"] == 4
    faster = build_summary(facts(ClockPlan(START, START + 60_000, START + 600_000, 10.0)))
    assert not faster["latency_meaningful"]
    assert faster["latency_p99_ms"] is None


def test_steady_latency_leaves_out_what_was_stored_during_the_warm_up() -> None:
    warm = Histogram()
    for ms in (300, 40):  # the start's burst: in the whole run's figures, not in the steady ones
        warm.add(ms)
    summary = build_summary(facts(REAL_TIME, at_warmup=warm))
    assert summary["latency_p99_ms"] == 500
    assert summary["latency_steady_samples"] == 2
    assert (summary["latency_steady_p50_ms"], summary["latency_steady_p99_ms"]) == (20, 50)
    assert summary["latency_stop_samples"] == 0  # no cut before the stop: all of it is steady
    never = build_summary(facts(REAL_TIME))  # a run shorter than its warm-up
    assert never["latency_steady_samples"] == 0
    assert never["latency_steady_p99_ms"] is None


def test_steady_latency_leaves_out_the_stop_which_is_reported_apart() -> None:
    """The merged histogram at warm-up had 1 message, before the stop 3 (the 20 ms and two 40 ms), and at the end
    4: the 300 ms one, the gateways' stop, counts in the stop's figures only."""
    warm, before_stop = Histogram(), Histogram()
    warm.add(20)
    for ms in (20, 40, 40):
        before_stop.add(ms)
    run = facts(REAL_TIME, at_warmup=warm)
    summary = build_summary(replace(run, latency_before_stop=before_stop))
    assert summary["latency_steady_samples"] == 2
    assert summary["latency_steady_p99_ms"] == 50
    assert (summary["latency_stop_samples"], summary["latency_stop_p99_ms"]) == (1, 500)
    assert summary["latency_p99_ms"] == 500  # the whole run keeps everything


def test_alert_latency_is_wall_time_from_the_condition_mapped_by_the_clock() -> None:
    clock = ClockPlan(START, START + 100_000, START + 600_000, 10.0)
    condition = START + 240_000  # at wall START + 100 s + 24 s
    seen = {
        "overheat-1": AlertSeen(alert("overheat-1", "overheat", "M7", condition), START + 124_000 + 700),
        "machine-down-2": AlertSeen(alert("machine-down-2", "machine-down", "M8", START + 300_000), START + 131_500),
    }
    summary = build_summary(facts(clock, alerts=seen))
    assert summary["faults"] == [
        {
            "kind": "overheat",
            "rule": "overheat",
            "workshop": "ws001",
            "machine_id": "M7",
            "at_s": 60,
            "alerted": True,
            "latency_ms": 700,
        }
    ]
    assert summary["faults_alerted"] == summary["faults_injected"] == 1
    assert summary["alerts"] == 2
    assert summary["unexpected_alerts"] == 1  # M8 went down by itself
    assert (summary["alert_latency_p50_ms"], summary["alert_latency_max_ms"]) == (700, 1_500)
    assert summary["passed"]


def test_a_fault_without_its_alert_or_a_wrong_figure_fails_the_run() -> None:
    assert not build_summary(facts(REAL_TIME))["passed"]  # the overheat fault raised nothing
    seen = {"o": AlertSeen(alert("o", "overheat", "M7", START + 240_000), START + 241_000)}
    assert build_summary(facts(REAL_TIME, alerts=seen))["passed"]
    failed = build_summary(facts(REAL_TIME, alerts=seen, wrong=1))
    assert not failed["passed"]
    assert failed["differences"] == ["M1 units: ledger 2 stored 1"]


def test_components_give_cores_and_machines_per_core_and_nulls_where_not_measured() -> None:
    summary = build_summary(facts(REAL_TIME))
    ingest = summary["components"]["ingest"]
    assert ingest["cores_mean"] == 0.5  # 50 CPU seconds over 100 wall seconds
    assert ingest["machines_per_core"] == 2000
    assert ingest["total_peak_rss_mb"] == 230.0
    assert summary["components"]["mosquitto"] == dict.fromkeys(COMPONENT_KEYS)
    assert (summary["messages_per_s"], summary["points_per_s"]) == (50.0, 60.0)


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 99) is None
    assert percentile([5, 1, 3], 50) == 3
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([7], 99) == 7


def test_worker_health_translates_once_and_histograms_merge_exactly() -> None:
    counts = [0] * (len(BOUNDS_MS) + 1)
    counts[3] = 2
    payload = {
        "worker": "ingest-1",
        "state": "ok",
        "ts": START,
        "messages_in": 10,
        "points_written": 12,
        "lag_ms": 40,
        "unacked": 0,
        "latency_bounds_ms": [1, 2],
        "latency_counts": counts,
    }
    other_bounds = parse_health(json.dumps(payload).encode())
    assert other_bounds is not None
    assert other_bounds.latency_counts == ()  # not our buckets: left out rather than merged wrongly
    a = parse_health(json.dumps(payload | {"latency_bounds_ms": list(BOUNDS_MS)}).encode())
    b = parse_health(json.dumps(payload | {"worker": "ingest-2", "latency_bounds_ms": list(BOUNDS_MS)}).encode())
    assert a is not None
    assert b is not None
    assert len(a.latency_counts) == len(BOUNDS_MS) + 1
    merged = merge_latency([a, b, other_bounds])
    assert merged.total == 4
    assert merged.counts[3] == 4
    assert parse_health(b"") is None
    assert parse_health(b'{"worker": "x"}') is None


def test_at_real_time_a_latency_aim_missed_fails_the_run_and_says_which() -> None:
    warm = Histogram()
    warm.add(20)  # after the warm-up: 40, 40 and 300 ms, so the steady p99 is 500 ms (its bucket's bound)
    late = {"o": AlertSeen(alert("o", "overheat", "M7", START + 240_000), START + 246_000)}  # 6 s after
    run = facts(REAL_TIME, alerts=late, at_warmup=warm)
    summary = build_summary(run)
    assert summary["aims_judged"]
    assert summary["aims_missed"] == ["alert latency p99 6,000 ms, aim at most 5,000 ms"]
    assert not summary["passed"]

    both = build_summary(replace(run, aims=Aims(latency_ms=400, alert_latency_ms=6_000)))
    assert both["aims_missed"] == ["end-to-end latency p99 after the warm-up 500 ms, aim at most 400 ms"]
    assert (both["latency_aim_ms"], both["alert_latency_aim_ms"]) == (400, 6_000)
    assert build_summary(replace(run, aims=Aims(latency_ms=500, alert_latency_ms=6_000)))["passed"]


def test_faster_than_real_time_the_latency_aims_are_not_judged() -> None:
    clock = ClockPlan(START, START, START + 600_000, 10.0)
    slow = {"o": AlertSeen(alert("o", "overheat", "M7", START + 240_000), START + 24_000 + 60_000)}
    summary = build_summary(facts(clock, alerts=slow))
    assert summary["alert_latency_p99_ms"] == 60_000
    assert not summary["aims_judged"]
    assert summary["aims_missed"] == []
    assert summary["passed"]
