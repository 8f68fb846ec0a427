"""A plant left to itself is fault-free by construction: the simulator's natural life stays inside bounds
(simulators/profiles.py) that the default alert rules (alerts/rules.yaml) set beyond, and these tests tie the
two, so a rule made stricter or a profile made wilder fails here rather than on some start hour."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.rules import (
    AlertConfig,
    MachineDownRule,
    MachineOfflineRule,
    OverheatRule,
    RepeatedStopsRule,
    ServiceOverdueRule,
    SlowRunningRule,
    _Rule,
    load_config,
)
from ftel.contract.states import UNKNOWN_FAULT, MachineState, MachineType
from ftel.plant.layout import MachineSpec
from simulators.driver import SimulatedDriver
from simulators.machine import MachineModel
from simulators.profiles import MAX_UNREPORTED_STOP_MS, MIN_SAME_FAULT_GAP_MS, PROFILES, SPEED_PERMILLE

MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS
RULES: AlertConfig = load_config()


R = TypeVar("R", bound=_Rule)


def rules_of(kind: type[R], machine_type: MachineType) -> Iterator[R]:
    for rule in RULES.rules:
        if isinstance(rule, kind) and rule.applies_to(machine_type.value):
            yield rule


def test_every_natural_repair_ends_before_its_machine_down_limit() -> None:
    for machine_type, profile in PROFILES.items():
        for fault in profile.faults:
            for rule in rules_of(MachineDownRule, machine_type):
                assert fault.max_repair_ms < rule.threshold_ms(fault.reason), (machine_type, fault, rule)


def test_a_natural_fault_without_its_code_ends_before_the_machine_down_limit_of_unknown_fault() -> None:
    # Any fault may reach the gateway as unknown_fault, which the rules judge by their own limit, not the fault's.
    for machine_type in PROFILES:
        for rule in rules_of(MachineDownRule, machine_type):
            assert rule.threshold_ms(UNKNOWN_FAULT) > MAX_UNREPORTED_STOP_MS, (machine_type, rule)


def quickest_down_limit_ms(machine_type: MachineType, reason: str) -> float:
    return min((rule.threshold_ms(reason) for rule in rules_of(MachineDownRule, machine_type)), default=math.inf)


def test_natural_stops_of_one_reason_are_too_sparse_for_repeated_stops() -> None:
    # Stops of one reason begin at least MIN_SAME_FAULT_GAP_MS apart, so a window holds at most this many.
    for machine_type, profile in PROFILES.items():
        for rule in rules_of(RepeatedStopsRule, machine_type):
            most = math.ceil(rule.window_minutes * MINUTE_MS / MIN_SAME_FAULT_GAP_MS)
            assert any(rule.counts(f.reason) for f in profile.faults)
            assert most < rule.count, (machine_type, rule)


def test_natural_running_speed_is_never_slow() -> None:
    for machine_type in PROFILES:
        for rule in rules_of(SlowRunningRule, machine_type):
            assert SPEED_PERMILLE[0] / 10 >= rule.percent_of_rated, rule


def test_natural_maintenance_is_due_before_service_is_overdue() -> None:
    # The simulator services a machine when its run-hours reach the interval, never past it.
    for machine_type in PROFILES:
        for rule in rules_of(ServiceOverdueRule, machine_type):
            assert rule.factor >= 1.0
            assert machine_type not in rule.interval_h  # the machine's own interval (its meta) is what both use


@settings(max_examples=40, deadline=None)
@given(
    machine_type=st.sampled_from(list(MachineType)),
    start_ms=st.integers(1_577_836_800_000, 2_082_758_400_000),
    seed=st.integers(0, 2**32),
)
def test_a_day_of_natural_life_stays_inside_the_bounds(machine_type: MachineType, start_ms: int, seed: int) -> None:
    model = MachineModel(MachineSpec(id="M-1", type=machine_type), plant_seed=seed, start_ms=start_ms)
    profile = PROFILES[machine_type]
    repair = {f.reason: f.max_repair_ms for f in profile.faults}
    repair[UNKNOWN_FAULT] = MAX_UNREPORTED_STOP_MS  # any fault may reach the gateway without its code
    last_stop: dict[str, int] = {}
    for segment in model.segments():
        if segment.start_ms >= start_ms + DAY_MS:
            break
        assert segment.state is not MachineState.OFFLINE
        assert model.service_at(segment, segment.end_ms) <= model.service_interval_ms
        if segment.state is MachineState.RUNNING:
            assert SPEED_PERMILLE[0] <= segment.speed_permille <= SPEED_PERMILLE[1]
        if segment.state is MachineState.DOWN:
            assert segment.reason is not None
            assert segment.end_ms - segment.start_ms <= repair[segment.reason], segment
            # And so, directly: no natural stop outlasts the quickest machine-down limit for the reason it reports.
            assert segment.end_ms - segment.start_ms < quickest_down_limit_ms(machine_type, segment.reason), segment
            previous = last_stop.get(segment.reason)
            assert previous is None or segment.start_ms - previous >= MIN_SAME_FAULT_GAP_MS, segment
            last_stop[segment.reason] = segment.start_ms
    # Telemetry: never overheating (the driver adds a slow wobble to each type's running temperature).
    driver = SimulatedDriver(model)
    limits = [rule.limit_c for rule in rules_of(OverheatRule, machine_type)]
    for at in range(start_ms, start_ms + DAY_MS, 30_000):
        for reading in driver.read(at):
            assert all(reading.temperature <= limit for limit in limits), reading


def test_no_machine_offline_rule_can_fire_on_a_natural_state() -> None:
    # The simulator never reports OFFLINE (checked above), which is all machine_offline rules look at.
    assert any(isinstance(rule, MachineOfflineRule) for rule in RULES.rules)
