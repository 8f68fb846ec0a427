"""The load test's injected faults: planned from the alert rules' own limits, and each raises exactly its alert
when the plant's gateways are replayed through the alert engine (no services: tests/plant_replay.py)."""

from __future__ import annotations

import pytest

from alerts.engine import Engine
from alerts.lifecycle import Status
from alerts.rules import load_config
from gateway.core import GatewayTiming
from loadtest.faults import FaultKind, FaultPlan, plan_faults
from simulators.plant import generate_plant
from tests.plant_replay import received, run_gateway

MINUTE_S = 60
TIMING = GatewayTiming(
    window_ms=60_000, telemetry_interval_ms=30_000, heartbeat_interval_ms=10_000, tick_s=0, telemetry_spread=False
)
# Pinned starts on whole minutes (each is another plant history around the faults).
STARTS = (1_795_402_800_000, 1_795_447_260_000)


def test_every_workshop_gets_each_fault_on_a_machine_of_its_own() -> None:
    plant = generate_plant(200, per_workshop=50)
    plan = plan_faults(plant, load_config(), 20 * MINUTE_S)
    assert plan.skipped == ()
    assert len(plan.faults) == 3 * len(plant.workshops)
    for workshop in plant.workshops:
        mine = [f for f in plan.faults if f.workshop == workshop.id]
        assert {f.kind for f in mine} == set(FaultKind)
        assert len({f.machine_id for f in mine}) == 3
        assert {f.machine_id for f in mine} <= {m.id for m in workshop.machines}
    injected = plan.with_faults(plant)
    assert len(injected.injected_states) == len(plan.states)
    assert len(injected.injected_anomalies) == len(plant.workshops)


def test_faults_use_the_rules_limits() -> None:
    config = load_config()
    plan = plan_faults(generate_plant(50, per_workshop=50), config, 20 * MINUTE_S)
    by_kind = {f.kind: f for f in plan.faults}
    # The quickest machine-down limit in a workshop with spinning frames: ends_down, 12 minutes.
    assert by_kind[FaultKind.LONG_DOWN].condition_s - by_kind[FaultKind.LONG_DOWN].at_s == 12 * MINUTE_S
    assert by_kind[FaultKind.OVERHEAT].condition_s - by_kind[FaultKind.OVERHEAT].at_s == 3 * MINUTE_S
    burst = [s for s in plan.states if s.machine_id == by_kind[FaultKind.STOP_BURST].machine_id]
    assert len(burst) == 6  # one more than the rule's count of 5
    assert burst[-1].at_s - burst[0].at_s <= 10 * MINUTE_S


def test_a_run_too_short_for_a_rule_leaves_its_fault_out_and_says_why() -> None:
    plan = plan_faults(generate_plant(100, per_workshop=50), load_config(), 6 * MINUTE_S)
    assert {f.kind for f in plan.faults} == {FaultKind.STOP_BURST, FaultKind.OVERHEAT}
    assert len(plan.skipped) == 1
    assert "long_down" in plan.skipped[0]
    assert "--speedup" in plan.skipped[0]
    assert plan_faults(generate_plant(100, per_workshop=50), load_config(), 60).faults == ()
    assert FaultPlan().with_faults(generate_plant(10)) == generate_plant(10)


@pytest.mark.parametrize("start_ms", STARTS)
def test_each_injected_fault_raises_its_alert_once_when_its_condition_holds(start_ms: int) -> None:
    duration_s = 16 * MINUTE_S
    base = generate_plant(100, per_workshop=50, site="lt")
    plan = plan_faults(base, load_config(), duration_s)
    plant = plan.with_faults(base)
    end = start_ms + duration_s * 1000
    streams = [
        run_gateway(
            plant,
            w.id,
            start_ms=start_ms,
            first_read_ms=start_ms,
            end_ms=end,
            steps_ms=[1_000],
            timing=TIMING,
            boot_id=start_ms + i,
        ).arrivals()
        for i, w in enumerate(plant.workshops)
    ]
    engine = Engine(load_config())
    fired = [r for message in received(*streams) for r in engine.observe(message) if r.status is Status.FIRING]
    machine_alerts = [r for r in fired if r.subject_type == "machine"]
    assert sorted((r.rule, r.subject) for r in machine_alerts) == sorted((f.rule, f.machine_id) for f in plan.faults)
    for fault in plan.faults:
        (record,) = [r for r in machine_alerts if (r.rule, r.subject) == (fault.rule, fault.machine_id)]
        planned = start_ms + fault.condition_s * 1000
        # Exact for stops; overheating counts from the first telemetry sample above the limit; a machine already
        # down for that very reason when the fault began has been down for longer.
        assert start_ms + fault.at_s * 1000 <= record.condition_ms <= planned + TIMING.telemetry_interval_ms
