"""The injected-fault story the alert tests tell, with services (tests/integration/test_alerts_faults.py) and
without (tests/unit/test_alerts_replay.py): one plant, its faults, when each happens, and what each must raise.

Times are seconds after the simulation start."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from alerts.lifecycle import AlertRecord, Status
from ftel.contract.states import MachineState, MachineType
from ftel.plant.layout import InjectedAnomaly, InjectedServiceOverdue, InjectedState, MachineSpec, Plant, Workshop

MINUTE_S = 60
OVERHEAT_AT_S, OVERHEAT_FOR_S = 5 * MINUTE_S, 10 * MINUTE_S
DOWN_AT_S, DOWN_FOR_S = 5 * MINUTE_S, 15 * MINUTE_S
BURST_AT_S, BURST_EVERY_S, BURST_STOPS = 5 * MINUTE_S, 60, 6
SERVICE_AT_S, SERVICE_FOR_S = 15 * MINUTE_S, 10 * MINUTE_S
KILL_AT_S, RESTART_AT_S = 10 * MINUTE_S, 20 * MINUTE_S
END_S = 30 * MINUTE_S
# The gateway that is killed (no clean death: the broker publishes its last will) and started again.
KILLED_WORKSHOP = "spare"
# A heartbeat every 10 simulated seconds keeps each gateway's time moving; detection lags by at most that much.
HEARTBEAT_MS = 10_000
MAX_LATENCY_MS = HEARTBEAT_MS + 2_000

EXPECTED = frozenset(
    {
        ("overheat", "CARD-001"),
        ("machine-down", "SPIN-001"),
        ("repeated-stops", "KNIT-001"),
        ("service-overdue", "CARD-002"),
        ("gateway-offline", "gw-spare"),
    }
)


def fault_plant(site: str) -> Plant:
    def spec(machine_id: str, machine_type: MachineType) -> MachineSpec:
        return MachineSpec(id=machine_id, type=machine_type)

    return Plant(
        site=site,
        workshops=(
            Workshop(
                id="yarn",
                name="Carding and spinning",
                gateway_id="gw-yarn",
                machines=(
                    spec("CARD-001", MachineType.CARDING),
                    spec("CARD-002", MachineType.CARDING),
                    spec("SPIN-001", MachineType.SPINNING),
                    spec("SPIN-002", MachineType.SPINNING),
                ),
            ),
            Workshop(
                id="knit",
                name="Flat knitting",
                gateway_id="gw-knit",
                machines=(spec("KNIT-001", MachineType.KNITTING), spec("KNIT-002", MachineType.KNITTING)),
            ),
            Workshop(
                id=KILLED_WORKSHOP,
                name="Spare carding",
                gateway_id="gw-spare",
                machines=(spec("CARD-101", MachineType.CARDING),),
            ),
        ),
        injected_anomalies=(
            InjectedAnomaly(
                machine_id="CARD-001", at_s=OVERHEAT_AT_S, duration_s=OVERHEAT_FOR_S, temperature_rise_c=40.0
            ),
        ),
        injected_states=(
            InjectedState(machine_id="SPIN-001", at_s=DOWN_AT_S, duration_s=DOWN_FOR_S, reason="ends_down"),
            *(
                InjectedState(
                    machine_id="KNIT-001",
                    at_s=BURST_AT_S + i * BURST_EVERY_S,
                    duration_s=20,
                    reason="yarn_break",
                )
                for i in range(BURST_STOPS)
            ),
            InjectedState(
                machine_id="CARD-002",
                at_s=SERVICE_AT_S,
                duration_s=SERVICE_FOR_S,
                state=MachineState.MAINTENANCE,
            ),
        ),
        injected_service_overdue=(InjectedServiceOverdue(machine_id="CARD-002", run_hours=170.0),),
    )


def by_problem(records: Iterable[AlertRecord]) -> dict[tuple[str, str], set[str]]:
    """(rule, subject) -> alert ids."""
    out: dict[tuple[str, str], set[str]] = {}
    for r in records:
        out.setdefault((r.rule, r.subject), set()).add(r.alert_id)
    return out


def final(records: Iterable[AlertRecord]) -> dict[str, AlertRecord]:
    """alert id -> its latest record (resolved wins over earlier states)."""
    order = {Status.FIRING: 0, Status.ACKNOWLEDGED: 1, Status.RESOLVED: 2}
    out: dict[str, AlertRecord] = {}
    for r in records:
        if r.alert_id not in out or order[r.status] >= order[out[r.alert_id].status]:
            out[r.alert_id] = r
    return out


def all_resolved(records: Iterable[AlertRecord]) -> bool:
    return {(r.rule, r.subject) for r in final(records).values() if r.status is Status.RESOLVED} >= EXPECTED


def check_story(records: Sequence[AlertRecord], start_ms: int) -> dict[tuple[str, str], AlertRecord]:
    """Each injected fault raised exactly one alert, within a heartbeat of its condition becoming true (in
    simulated time), that resolved when the fault cleared; nothing else raised any. Returns the final record of
    each problem."""

    def at(seconds: int) -> int:
        return start_ms + seconds * 1000

    where = f"(simulation start {start_ms})"
    problems = by_problem(records)
    extra = [r for r in records if (r.rule, r.subject) not in EXPECTED]
    assert set(problems) == EXPECTED, f"unexpected alerts: {extra} {where}"
    repeated = {
        k: [
            (r.status.value, r.started_ms - start_ms, r.fired_ms - start_ms, r.resolved_ms)
            for r in records
            if (r.rule, r.subject) == k
        ]
        for k, ids in problems.items()
        if len(ids) > 1
    }
    assert not repeated, f"{repeated} {where}"
    last = {(r.rule, r.subject): r for r in final(records).values()}
    latency = {key: r.fired_ms - r.condition_ms for key, r in last.items()}
    assert all(0 <= ms <= MAX_LATENCY_MS for ms in latency.values()), f"{latency} {where}"

    # When each condition became true, by what was injected.
    down = last[("machine-down", "SPIN-001")]
    assert down.started_ms <= at(DOWN_AT_S), where
    assert down.condition_ms == down.started_ms + 12 * 60_000, where
    assert down.resolved_ms == at(DOWN_AT_S + DOWN_FOR_S), where
    heat = last[("overheat", "CARD-001")]
    assert heat.started_ms == at(OVERHEAT_AT_S), where
    assert heat.condition_ms == at(OVERHEAT_AT_S + 3 * MINUTE_S), where
    assert at(OVERHEAT_AT_S + OVERHEAT_FOR_S) <= (heat.resolved_ms or 0) <= at(OVERHEAT_AT_S + OVERHEAT_FOR_S + 30), (
        where
    )
    burst = last[("repeated-stops", "KNIT-001")]
    assert burst.detail == "yarn_break", where
    assert burst.condition_ms <= at(BURST_AT_S + 4 * BURST_EVERY_S), where
    service = last[("service-overdue", "CARD-002")]
    assert service.started_ms == start_ms, where
    assert service.resolved_ms == at(SERVICE_AT_S), where
    offline = last[("gateway-offline", "gw-spare")]
    assert at(KILL_AT_S - 15) <= offline.started_ms <= at(KILL_AT_S + 5), where
    # Resolved by the restarted gateway: its first heartbeat or its birth.
    assert at(RESTART_AT_S) <= (offline.resolved_ms or 0) <= at(RESTART_AT_S + 5 * MINUTE_S), where
    return last
