"""The pure alert core: rules from YAML, evaluation over contract messages, lifecycle with hold-down, ids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.delivery import alert_point, webhook_body
from alerts.engine import Engine, EngineState
from alerts.errors import RulesError
from alerts.grafana_rules import grafana_rules, write_grafana_rules
from alerts.lifecycle import AlertRecord, Status
from alerts.rules import AlertConfig, load_config, parse_config
from alerts.store import Store
from ftel.contract.limits import EPOCH_MAX_MS, EPOCH_MIN_MS
from ftel.contract.models import GatewayStatus, Heartbeat, MachineMeta, Message, StateChange, Telemetry
from ftel.contract.states import MachineState, MachineType
from ftel.storage.lineproto import encode_point

MIN = 60_000
T0 = 1_800_000_000_000


def config(**extra: object) -> AlertConfig:
    return parse_config(
        {
            "hold_down_s": 60,
            "rules": [
                {
                    "name": "down",
                    "kind": "machine_down",
                    "minutes": 10,
                    "reason_minutes": {"needle_break": 60},
                },
                {"name": "stops", "kind": "repeated_stops", "count": 3, "window_minutes": 10},
                {"name": "gw", "kind": "gateway_offline", "after_death_s": 30, "heartbeat_timeout_s": 45},
                {"name": "offline", "kind": "machine_offline", "minutes": 5},
                {"name": "slow", "kind": "slow_running", "percent_of_rated": 70, "minutes": 10},
                {"name": "service", "kind": "service_overdue"},
                {
                    "name": "hot",
                    "kind": "overheat",
                    "limit_c": 60,
                    "minutes": 3,
                    "machine_types": ["carding"],
                },
            ],
            **extra,
        }
    )


common: dict[str, Any] = {"site": "s", "workshop": "w", "gateway_id": "gw-1", "seq": 1}
knit: dict[str, Any] = {**common, "machine_type": MachineType.KNITTING, "machine_id": "K1"}


def change(
    ts: int,
    state: MachineState,
    reason: str | None = None,
    prev: MachineState = MachineState.RUNNING,
    prev_reason: str | None = None,
) -> StateChange:
    return StateChange(
        **knit,
        ts=ts,
        state=state,
        reason=reason,
        prev_state=prev,
        prev_reason=prev_reason,
        prev_duration_ms=0,
    )


def heartbeat(ts: int, gateway: str = "gw-1") -> Heartbeat:
    return Heartbeat(
        **{**common, "gateway_id": gateway},
        ts=ts,
        boot_id=T0,
        uptime_ms=0,
        machines=1,
        spool_depth=0,
        spool_dropped=0,
    )


def telemetry(
    ts: int,
    *,
    temperature: float = 40.0,
    speed: float = 1.0,
    run_ms: int = 0,
    state: MachineState = MachineState.RUNNING,
    machine: dict[str, Any] | None = None,
) -> Telemetry:
    return Telemetry(
        **(machine or knit),
        ts=ts,
        state=state,
        speed=speed,
        temperature=temperature,
        units_total=0,
        defects_total=0,
        run_ms_since_service=run_ms,
    )


def feed(engine: Engine, messages: Sequence[Message]) -> list[AlertRecord]:
    return [t for m in messages for t in engine.observe(m)]


def test_default_rules_file_loads_with_every_rule_kind() -> None:
    kinds = {r.kind for r in load_config().rules}
    assert kinds == {
        "machine_down",
        "repeated_stops",
        "gateway_offline",
        "machine_offline",
        "slow_running",
        "service_overdue",
        "overheat",
    }


def test_rules_file_with_an_unknown_reason_is_refused_with_the_rule() -> None:
    with pytest.raises(RulesError, match="unknown reason codes"):
        parse_config(
            {"rules": [{"name": "d", "kind": "machine_down", "minutes": 1, "reason_minutes": {"coffee_break": 5}}]}
        )


def test_down_fires_once_at_its_threshold_and_resolves_after_the_hold_down() -> None:
    engine = Engine(config())
    fired = feed(engine, [change(T0, MachineState.DOWN, "yarn_break"), heartbeat(T0 + 9 * MIN)])
    assert fired == []
    fired = feed(engine, [heartbeat(T0 + 10 * MIN), heartbeat(T0 + 11 * MIN)])
    assert [(r.rule, r.status, r.condition_ms, r.fired_ms) for r in fired] == [
        ("down", Status.FIRING, T0 + 10 * MIN, T0 + 10 * MIN)
    ]
    cleared = feed(
        engine,
        [
            change(T0 + 15 * MIN, MachineState.RUNNING, prev=MachineState.DOWN, prev_reason="yarn_break"),
            heartbeat(T0 + 15 * MIN + 59_000),
        ],
    )
    assert cleared == []
    resolved = feed(engine, [heartbeat(T0 + 16 * MIN)])
    assert [(r.status, r.resolved_ms, r.alert_id) for r in resolved] == [
        (Status.RESOLVED, T0 + 15 * MIN, fired[0].alert_id)
    ]


def test_per_reason_limit_applies() -> None:
    engine = Engine(config())
    assert feed(engine, [change(T0, MachineState.DOWN, "needle_break"), heartbeat(T0 + 30 * MIN)]) == []


def test_a_condition_back_within_the_hold_down_continues_the_same_alert() -> None:
    engine = Engine(config())
    first = feed(engine, [change(T0, MachineState.DOWN, "yarn_break"), heartbeat(T0 + 10 * MIN)])
    flaps = feed(
        engine,
        [
            change(T0 + 11 * MIN, MachineState.RUNNING, prev=MachineState.DOWN, prev_reason="yarn_break"),
            change(T0 + 11 * MIN + 30_000, MachineState.DOWN, "yarn_break"),
            heartbeat(T0 + 30 * MIN),
        ],
    )
    assert len(first) == 1
    assert flaps == []  # the second DOWN period crossed 10 min too, but the first alert never resolved


def test_repeated_stops_alert_once_per_reason_and_clear_as_the_window_slides() -> None:
    engine = Engine(config())
    msgs: list[Message] = []
    for i in range(4):
        msgs += [
            change(T0 + i * MIN, MachineState.DOWN, "yarn_break"),
            change(T0 + i * MIN + 20_000, MachineState.RUNNING, prev=MachineState.DOWN, prev_reason="yarn_break"),
        ]
    out = feed(engine, msgs)
    assert [(r.rule, r.detail, r.condition_ms) for r in out] == [("stops", "yarn_break", T0 + 2 * MIN)]
    resolved = feed(engine, [heartbeat(T0 + 13 * MIN), heartbeat(T0 + 14 * MIN + 1)])
    assert [r.status for r in resolved] == [Status.RESOLVED]


def test_redelivered_events_change_nothing() -> None:
    once, twice = Engine(config()), Engine(config())
    msgs: list[Message] = [
        change(
            T0 + i * MIN,
            MachineState.DOWN if i % 2 == 0 else MachineState.RUNNING,
            "yarn_break" if i % 2 == 0 else None,
            prev=MachineState.RUNNING if i % 2 == 0 else MachineState.DOWN,
            prev_reason=None if i % 2 == 0 else "yarn_break",
        )
        for i in range(6)
    ]
    a = feed(once, msgs)
    b = feed(twice, [m for msg in msgs for m in (msg, msg)])
    assert a == b


def test_gateway_death_alerts_after_the_grace_and_holds_its_machines() -> None:
    engine = Engine(config())
    feed(engine, [change(T0, MachineState.DOWN, "yarn_break"), heartbeat(T0 + MIN)])
    death = GatewayStatus(
        **common, ts=T0 - 3600_000, online=False, boot_id=T0 - 7200_000, machines={"K1": MachineType.KNITTING}
    )
    out = feed(engine, [death, heartbeat(T0 + 20 * MIN, gateway="gw-2")])
    assert engine.state.machines["s/w/K1"].state is None
    assert [(r.rule, r.subject, r.started_ms) for r in out] == [("gw", "gw-1", T0 + MIN)]
    birth = GatewayStatus(**common, ts=T0 + 21 * MIN, online=True, boot_id=T0)
    # A gateway that comes back reports each machine afresh.
    back = change(T0 + 21 * MIN, MachineState.RUNNING, prev=MachineState.OFFLINE)
    beats = [heartbeat(T0 + 21 * MIN + s * 10_000, gateway=g) for s in range(1, 19) for g in ("gw-1", "gw-2")]
    out = feed(engine, [heartbeat(T0 + 20 * MIN + 50_000, gateway="gw-2"), birth, back, *beats])
    assert [(r.rule, r.status) for r in out] == [("gw", Status.RESOLVED)]


def test_missing_heartbeats_alert_even_without_a_last_will() -> None:
    engine = Engine(config())
    feed(engine, [heartbeat(T0), heartbeat(T0, gateway="gw-2")])
    out = feed(engine, [heartbeat(T0 + 44_000, gateway="gw-2"), heartbeat(T0 + 46_000, gateway="gw-2")])
    assert [(r.rule, r.subject, r.condition_ms) for r in out] == [("gw", "gw-1", T0 + 45_000)]


def test_telemetry_rules_need_every_sample_over_the_limit() -> None:
    card: dict[str, Any] = {**common, "machine_type": MachineType.CARDING, "machine_id": "C1"}
    engine = Engine(config())
    samples = [telemetry(T0 + i * 30_000, temperature=65.0 if i != 3 else 59.0, machine=card) for i in range(12)]
    out = feed(engine, samples)
    assert [(r.rule, r.started_ms, r.condition_ms) for r in out] == [("hot", T0 + 4 * 30_000, T0 + 10 * 30_000)]


def test_overheat_ignores_machine_types_outside_its_filter() -> None:
    engine = Engine(config())
    assert feed(engine, [telemetry(T0 + i * 30_000, temperature=90.0) for i in range(12)]) == []


def test_slow_running_and_service_overdue_use_the_machine_meta() -> None:
    meta = MachineMeta(**knit, ts=T0, model="m", line="l", rated_speed=1.0, speed_unit="m/s", service_interval_h=200.0)
    engine = Engine(config())
    out = feed(engine, [meta, *(telemetry(T0 + i * 30_000, speed=0.5, run_ms=201 * 3_600_000) for i in range(22))])
    assert sorted((r.rule, r.condition_ms) for r in out) == [("service", T0), ("slow", T0 + 10 * MIN)]
    out = feed(engine, [change(T0 + 12 * MIN, MachineState.MAINTENANCE), heartbeat(T0 + 14 * MIN)])
    assert sorted((r.rule, r.status) for r in out) == [
        ("service", Status.RESOLVED),
        ("slow", Status.RESOLVED),
    ]


def test_acknowledge_then_resolve() -> None:
    engine = Engine(config())
    (fired,) = feed(engine, [change(T0, MachineState.DOWN, "yarn_break"), heartbeat(T0 + 10 * MIN)])
    acked = engine.acknowledge(fired.alert_id, by="li")
    assert acked is not None
    assert acked.status is Status.ACKNOWLEDGED
    assert acked.acknowledged_by == "li"
    assert engine.acknowledge(fired.alert_id, by="li") is None
    out = feed(
        engine,
        [
            change(T0 + 11 * MIN, MachineState.IDLE, prev=MachineState.DOWN, prev_reason="yarn_break"),
            heartbeat(T0 + 13 * MIN),
        ],
    )
    assert [(r.status, r.acknowledged_by) for r in out] == [(Status.RESOLVED, "li")]


def test_snapshot_round_trip_resumes_without_repeating() -> None:
    engine = Engine(config())
    feed(engine, [change(T0, MachineState.DOWN, "yarn_break"), heartbeat(T0 + 10 * MIN)])
    restored = Engine(config(), EngineState.model_validate_json(engine.state.model_dump_json()))
    assert feed(restored, [heartbeat(T0 + 12 * MIN)]) == []


def test_restore_from_retained_alerts_prevents_a_second_alert() -> None:
    first = Engine(config())
    (fired,) = feed(first, [change(T0, MachineState.DOWN, "yarn_break"), heartbeat(T0 + 10 * MIN)])
    fresh = Engine(config())
    fresh.lifecycle.restore([fired])
    assert feed(fresh, [change(T0, MachineState.DOWN, "yarn_break"), heartbeat(T0 + 11 * MIN)]) == []


@given(
    st.integers(min_value=EPOCH_MIN_MS, max_value=EPOCH_MAX_MS - 10**9), st.sampled_from(["yarn_break", "needle_break"])
)
def test_alert_ids_depend_only_on_the_problem(start: int, reason: str) -> None:
    def fire() -> str:
        engine = Engine(config())
        out = feed(engine, [change(start, MachineState.DOWN, reason), heartbeat(start + 61 * MIN)])
        return out[0].alert_id

    assert fire() == fire()


def test_alert_point_and_webhook_body_follow_the_schema() -> None:
    engine = Engine(config())
    (fired,) = feed(engine, [change(T0, MachineState.DOWN, "yarn_break"), heartbeat(T0 + 10 * MIN)])
    line = encode_point(alert_point(fired))
    assert line.startswith("alerts,rule=down,severity=warning,site=s,subject=K1,workshop=w ")
    assert f'alert_id="{fired.alert_id}"' in line
    assert "status_code=0i" in line
    assert "resolved_ms=0i" in line
    assert f'"event_id": "{fired.alert_id}:firing"' in webhook_body(fired)


def test_outbox_keeps_one_row_per_sink_and_event(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite")
    assert store.commit("{}", [("mqtt", "a:firing", "x"), ("influx", "a:firing", "x")]) == 2
    assert store.commit("{}", [("mqtt", "a:firing", "x")]) == 0
    (item,) = store.due("mqtt", limit=10)
    store.failed(item, retry_in_s=60, error="down")
    assert store.due("mqtt", limit=10) == []
    assert store.pending() == 2
    store.close()


def test_grafana_export_has_a_rule_per_alert_rule_on_the_influx_datasource(tmp_path: Path) -> None:
    tree = grafana_rules(load_config())
    (group,) = tree["groups"]
    assert tree["apiVersion"] == 1
    assert [r["title"] for r in group["rules"]] == [r.name for r in load_config().rules]
    queries = [d for r in group["rules"] for d in r["data"] if d["datasourceUid"] == "ftel-influxdb"]
    assert queries
    assert all("$timeFilter" in d["model"]["query"] for d in queries)
    assert write_grafana_rules(tmp_path).relative_to(tmp_path).as_posix() == "provisioning/alerting/ftel-alerts.yaml"
