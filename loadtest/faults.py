"""Faults injected into the load test's plant and the alerts each must raise (pure).

In every workshop, one machine goes DOWN for longer than the machine-down rule allows for its reason (the
shortest limit among the workshop's machine types), one stops again and again for the same reason (one stop
more than the repeated-stops rule counts), and one overheats for longer than the overheat rule allows. The
thresholds come from the alert rules the run uses, so a fault raises its alert by construction; a fault that
does not fit in the run (the default machine-down limits are 12 minutes and more) is left out and said so.
The plant's natural life raises no machine alert by construction (simulators/profiles.py), so any other
machine alert is unexpected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from alerts.rules import AlertConfig, MachineDownRule, OverheatRule, RepeatedStopsRule
from ftel.contract.states import MachineType
from ftel.plant.layout import InjectedAnomaly, InjectedState, Plant, Workshop
from simulators.profiles import PROFILES

# Plant seconds from the start before the first fault: the pipeline is past its start by then.
FIRST_FAULT_AT_S = 60
# Workshops' faults start this many seconds apart (cycling), so they do not all fall in one instant.
STAGGER_S = 3
STAGGER_CYCLE = 10
# A fault lasts this much beyond its rule's limit, and the run must go on this long after the limit is crossed
# for the alert to be seen (detection waits for the machine's next message: a heartbeat comes every 10 s).
BEYOND_LIMIT_S = 120
DETECTION_MARGIN_S = 60
BURST_STOP_S = 15
BURST_EVERY_S = 30
# Above the rule's limit by this much whatever the machine does (its temperature wobbles by a few degrees).
OVERHEAT_MARGIN_C = 10.0
R = TypeVar("R")


class FaultKind(StrEnum):
    LONG_DOWN = "long_down"
    STOP_BURST = "stop_burst"
    OVERHEAT = "overheat"


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """One injected fault and the alert it must raise: ``rule`` about ``machine_id``, whose condition holds
    from ``condition_s`` (plant seconds after the start)."""

    kind: FaultKind
    rule: str
    workshop: str
    machine_id: str
    at_s: int
    condition_s: int


@dataclass(frozen=True, slots=True)
class FaultPlan:
    faults: tuple[InjectedFault, ...] = ()
    states: tuple[InjectedState, ...] = ()
    anomalies: tuple[InjectedAnomaly, ...] = ()
    skipped: tuple[str, ...] = ()  # why a kind of fault was left out, for the report

    def with_faults(self, plant: Plant) -> Plant:
        return plant.model_copy(
            update={
                "injected_states": (*plant.injected_states, *self.states),
                "injected_anomalies": (*plant.injected_anomalies, *self.anomalies),
            }
        )


def _rule(config: AlertConfig, kind: type[R]) -> R | None:
    return next((r for r in config.rules if isinstance(r, kind)), None)


def _first_of(workshop: Workshop, machine_type: MachineType, taken: set[str]) -> str | None:
    """The workshop's first machine of that type that has no fault yet (now it has)."""
    machine = next((m.id for m in workshop.machines if m.type is machine_type and m.id not in taken), None)
    if machine is not None:
        taken.add(machine)
    return machine


def _shortest_down(rule: MachineDownRule, types: Sequence[MachineType]) -> tuple[MachineType, str, int] | None:
    """(machine type, reason, limit in s) of the quickest machine-down alert among ``types``."""
    options = [
        (int(rule.reason_minutes.get(fault.reason, rule.minutes) * 60), machine_type, fault.reason)
        for machine_type in types
        if rule.applies_to(machine_type.value)
        for fault in PROFILES[machine_type].faults
    ]
    if not options:
        return None
    limit, machine_type, reason = min(options, key=lambda o: (o[0], o[1].value, o[2]))
    return machine_type, reason, limit


@dataclass
class _Planner:
    """Collects the faults of every workshop, and why a kind was left out."""

    duration_s: int
    faults: list[InjectedFault] = field(default_factory=list)
    states: list[InjectedState] = field(default_factory=list)
    anomalies: list[InjectedAnomaly] = field(default_factory=list)
    skipped: dict[FaultKind, str] = field(default_factory=dict)

    def fits(self, kind: FaultKind, at: int, needs_s: int) -> bool:
        if at + needs_s + DETECTION_MARGIN_S <= self.duration_s:
            return True
        minutes = math.ceil((at + needs_s + DETECTION_MARGIN_S) / 60)
        self.skipped.setdefault(
            kind,
            f"{kind.value}: needs a run of at least {minutes} min of plant time (the rule's limit is "
            f"{needs_s / 60:.1f} min); run longer, faster (--speedup) or with shorter limits (--rules)",
        )
        return False

    def long_down(self, rule: MachineDownRule, workshop: Workshop, at: int, taken: set[str]) -> None:
        choice = _shortest_down(rule, _types(workshop))
        if choice is None or not self.fits(FaultKind.LONG_DOWN, at, choice[2]):
            return
        machine_type, reason, limit = choice
        machine = _first_of(workshop, machine_type, taken)
        if machine is not None:
            self.states.append(
                InjectedState(machine_id=machine, at_s=at, duration_s=limit + BEYOND_LIMIT_S, reason=reason)
            )
            self.faults.append(InjectedFault(FaultKind.LONG_DOWN, rule.name, workshop.id, machine, at, at + limit))

    def stop_burst(self, rule: RepeatedStopsRule, workshop: Workshop, at: int, taken: set[str]) -> None:
        stops = rule.count + 1
        span = (stops - 1) * BURST_EVERY_S
        reasons = [
            (t, f.reason)
            for t in _types(workshop)
            if rule.applies_to(t.value)
            for f in PROFILES[t].faults
            if not rule.reasons or f.reason in rule.reasons
        ]
        if span > rule.window_minutes * 60:
            self.skipped.setdefault(FaultKind.STOP_BURST, "stop_burst: the rule's window is shorter than a burst")
            return
        if not reasons or not self.fits(FaultKind.STOP_BURST, at, span + BURST_STOP_S):
            return
        machine_type, reason = reasons[0]
        machine = _first_of(workshop, machine_type, taken)
        if machine is not None:
            self.states.extend(
                InjectedState(machine_id=machine, at_s=at + i * BURST_EVERY_S, duration_s=BURST_STOP_S, reason=reason)
                for i in range(stops)
            )
            condition = at + (rule.count - 1) * BURST_EVERY_S
            self.faults.append(InjectedFault(FaultKind.STOP_BURST, rule.name, workshop.id, machine, at, condition))

    def overheat(self, rule: OverheatRule, workshop: Workshop, at: int, taken: set[str]) -> None:
        limit = int(rule.minutes * 60)
        candidates = [t for t in _types(workshop) if rule.applies_to(t.value)]
        if not candidates or not self.fits(FaultKind.OVERHEAT, at, limit):
            return
        machine = _first_of(workshop, candidates[0], taken)
        if machine is not None:
            rise = rule.limit_c - PROFILES[candidates[0]].base_temperature_c + OVERHEAT_MARGIN_C
            self.anomalies.append(
                InjectedAnomaly(machine_id=machine, at_s=at, duration_s=limit + BEYOND_LIMIT_S, temperature_rise_c=rise)
            )
            self.faults.append(InjectedFault(FaultKind.OVERHEAT, rule.name, workshop.id, machine, at, at + limit))


def _types(workshop: Workshop) -> list[MachineType]:
    return sorted({m.type for m in workshop.machines}, key=lambda t: t.value)


def plan_faults(plant: Plant, config: AlertConfig, duration_s: int) -> FaultPlan:
    """Each workshop's faults, on machines of their own, staggered a few seconds from workshop to workshop."""
    planner = _Planner(duration_s)
    down = _rule(config, MachineDownRule)
    burst = _rule(config, RepeatedStopsRule)
    heat = _rule(config, OverheatRule)
    for kind, rule in ((FaultKind.LONG_DOWN, down), (FaultKind.STOP_BURST, burst), (FaultKind.OVERHEAT, heat)):
        if rule is None:
            planner.skipped[kind] = f"{kind.value}: the rules have no rule for it"
    for index, workshop in enumerate(plant.workshops):
        at = FIRST_FAULT_AT_S + (index % STAGGER_CYCLE) * STAGGER_S
        taken: set[str] = set()
        if down is not None:
            planner.long_down(down, workshop, at, taken)
        if burst is not None:
            planner.stop_burst(burst, workshop, at, taken)
        if heat is not None:
            planner.overheat(heat, workshop, at, taken)
    return FaultPlan(
        tuple(planner.faults), tuple(planner.states), tuple(planner.anomalies), tuple(planner.skipped.values())
    )
