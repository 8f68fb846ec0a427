"""The pure alert core: rules from YAML, evaluation over contract messages, lifecycle with hold-down, ids."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from alerts.delivery import alert_point, webhook_body
from alerts.engine import Engine, EngineState
from alerts.errors import RulesError
from alerts.grafana_rules import grafana_rules, write_grafana_rules
from alerts.lifecycle import AlertRecord, Status
from alerts.rules import AlertConfig, load_config, parse_config
from alerts.store import Store
from ftel.contract.limits import EPOCH_MAX_MS, EPOCH_MIN_MS
from ftel.contract.models import (
    GatewayStatus,
    Heartbeat,
    MachineMeta,
    MachineNow,
    Message,
    StateChange,
    Telemetry,
)
from ftel.contract.states import MachineState, MachineType
from ftel.storage.lineproto import encode_point
from tests.plant_replay import arrivals, received

MIN = 60_000
HOUR = 60 * MIN
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


def heartbeat(ts: int, gateway: str = "gw-1", *, boot_id: int = T0) -> Heartbeat:
    return Heartbeat(
        **{**common, "gateway_id": gateway},
        ts=ts,
        boot_id=boot_id,
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


def birth(
    ts: int, *, boot_id: int = T0, gateway: str = "gw-1", **states: tuple[MachineState, str | None, int]
) -> GatewayStatus:
    """A birth of gw-1's knitting machines, each re-stated as (state, reason, since)."""
    return GatewayStatus(
        **{**common, "gateway_id": gateway},
        ts=ts,
        online=True,
        boot_id=boot_id,
        machines=dict.fromkeys(states, MachineType.KNITTING),
        states={m: MachineNow(state=s, reason=r, since_ms=since) for m, (s, r, since) in states.items()},
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
    # A last will carries the time it was registered (the connect, long before): the death is dated by the
    # last message seen from the gateway instead.
    will = GatewayStatus(**common, ts=T0, online=False, will=True, boot_id=T0, machines={"K1": MachineType.KNITTING})
    out = feed(engine, [will, heartbeat(T0 + 20 * MIN, gateway="gw-2")])
    assert engine.state.machines["s/w/K1"].state is None
    assert [(r.rule, r.subject, r.started_ms) for r in out] == [("gw", "gw-1", T0 + MIN)]
    # A gateway that comes back re-states each machine in its birth.
    back = birth(T0 + 21 * MIN, K1=(MachineState.RUNNING, None, T0 + 21 * MIN))
    beats = [heartbeat(T0 + 21 * MIN + s * 10_000, gateway=g) for s in range(1, 19) for g in ("gw-1", "gw-2")]
    out = feed(engine, [heartbeat(T0 + 20 * MIN + 50_000, gateway="gw-2"), back, *beats])
    assert [(r.rule, r.status) for r in out] == [("gw", Status.RESOLVED)]
    assert engine.state.machines["s/w/K1"].state is MachineState.RUNNING


def will(boot_id: int = T0, *, ts: int | None = None) -> GatewayStatus:
    """gw-1's last will: registered when it connected (``ts``, default its boot), published when it vanished."""
    return GatewayStatus(
        **{**common, "seq": 0},
        ts=boot_id if ts is None else ts,
        online=False,
        will=True,
        boot_id=boot_id,
        machines={"K1": MachineType.KNITTING},
    )


def test_a_machine_first_seen_down_is_learnt_from_the_birth_and_alerts_from_when_it_went_down() -> None:
    engine = Engine(config())
    out = feed(
        engine,
        [
            birth(T0 + MIN, K1=(MachineState.DOWN, "yarn_break", T0)),
            *(heartbeat(T0 + MIN + s * 10_000) for s in range(1, 60)),
        ],
    )
    assert [(r.rule, r.started_ms, r.condition_ms) for r in out] == [("down", T0, T0 + 10 * MIN)]
    assert engine.state.machines["s/w/K1"].stops == {}  # first sight is not a stop


def test_an_older_birth_does_not_override_a_newer_event() -> None:
    engine = Engine(config())
    feed(engine, [change(T0 + 2 * MIN, MachineState.DOWN, "yarn_break")])
    # A birth stamped before that event (sent again from the spool after it) says nothing about now.
    out = feed(engine, [birth(T0 + MIN, K1=(MachineState.RUNNING, None, T0)), heartbeat(T0 + 12 * MIN)])
    assert [(r.rule, r.started_ms) for r in out] == [("down", T0 + 2 * MIN)]


def test_a_birth_restating_the_state_an_event_set_keeps_the_event_start() -> None:
    engine = Engine(config())
    out = feed(
        engine,
        [
            change(T0, MachineState.DOWN, "yarn_break"),
            # A gateway restarted without its checkpoint first-sees the machine afresh.
            birth(T0 + 5 * MIN, K1=(MachineState.DOWN, "yarn_break", T0 + 5 * MIN)),
            heartbeat(T0 + 10 * MIN),
        ],
    )
    assert [(r.rule, r.started_ms, r.condition_ms) for r in out] == [("down", T0, T0 + 10 * MIN)]


def test_an_event_at_the_birth_time_is_newer_than_the_birth() -> None:
    engine = Engine(config())
    feed(engine, [birth(T0, K1=(MachineState.RUNNING, None, T0)), change(T0, MachineState.DOWN, "yarn_break")])
    machine = engine.state.machines["s/w/K1"]
    assert (machine.state, machine.stops) == (MachineState.DOWN, {"yarn_break": [T0]})


def test_a_will_dates_the_death_by_the_last_message_once() -> None:
    engine = Engine(config())
    feed(engine, [birth(T0 + 1000, K1=(MachineState.RUNNING, None, T0)), heartbeat(T0 + MIN)])
    assert engine.state.gateways["s/w/gw-1"].dead_since_ms is None
    feed(engine, [will(), heartbeat(T0 + 2 * MIN, gateway="gw-2")])
    assert engine.state.gateways["s/w/gw-1"].dead_since_ms == T0 + MIN
    # Redelivered (at least once), or published again while the gateway is still gone: nothing new.
    feed(engine, [will(), heartbeat(T0 + 3 * MIN, gateway="gw-2")])
    assert engine.state.gateways["s/w/gw-1"].dead_since_ms == T0 + MIN


def test_a_gateway_s_own_death_is_at_its_last_moment() -> None:
    engine = Engine(config())
    feed(engine, [birth(T0 + 1000, K1=(MachineState.DOWN, "yarn_break", T0)), heartbeat(T0 + MIN)])
    death = GatewayStatus(**common, ts=T0 + MIN + 5000, online=False, boot_id=T0, machines={"K1": MachineType.KNITTING})
    out = feed(engine, [death, heartbeat(T0 + 20 * MIN, gateway="gw-2")])
    assert engine.state.gateways["s/w/gw-1"].dead_since_ms == T0 + MIN + 5000
    assert [(r.rule, r.subject, r.started_ms) for r in out] == [("gw", "gw-1", T0 + MIN + 5000)]
    assert engine.state.machines["s/w/K1"].state is None  # held: its DOWN alert neither fires nor resolves


def test_a_death_of_an_earlier_boot_is_stale() -> None:
    engine = Engine(config())
    feed(engine, [birth(T0 + 1000, boot_id=T0, K1=(MachineState.RUNNING, None, T0)), heartbeat(T0 + MIN)])
    old_clean = GatewayStatus(
        **common, ts=T0 - MIN, online=False, boot_id=T0 - HOUR, machines={"K1": MachineType.KNITTING}
    )
    out = feed(engine, [will(T0 - HOUR), old_clean, *(heartbeat(T0 + MIN + s * 10_000) for s in range(1, 13))])
    assert out == []
    assert engine.state.gateways["s/w/gw-1"].dead_since_ms is None
    assert engine.state.gateways["s/w/gw-1"].online


def test_a_heartbeat_of_a_new_boot_makes_the_last_boot_s_will_stale() -> None:
    # The broker publishes the old connection's will when the restarted gateway takes over its client id, and
    # it may arrive after the new boot's first heartbeat.
    engine = Engine(config())
    feed(engine, [birth(T0 + 1000, boot_id=T0, K1=(MachineState.RUNNING, None, T0)), heartbeat(T0 + MIN)])
    feed(engine, [heartbeat(T0 + 5 * MIN, boot_id=T0 + 4 * MIN), will(T0)])
    assert engine.state.gateways["s/w/gw-1"].dead_since_ms is None
    assert engine.state.gateways["s/w/gw-1"].online


def test_a_birth_from_before_the_death_sent_again_does_not_bring_the_gateway_back() -> None:
    engine = Engine(config())
    first = birth(T0 + 1000, K1=(MachineState.RUNNING, None, T0))
    feed(engine, [first, heartbeat(T0 + MIN), will()])
    feed(engine, [first, heartbeat(T0 + 5 * MIN, gateway="gw-2")])
    assert not engine.state.gateways["s/w/gw-1"].online
    assert engine.state.machines["s/w/K1"].state is None
    # Its next birth (same boot, reconnected) does.
    feed(engine, [birth(T0 + 6 * MIN, K1=(MachineState.IDLE, None, T0 + 3 * MIN))])
    assert engine.state.gateways["s/w/gw-1"].online
    assert engine.state.machines["s/w/K1"].state is MachineState.IDLE


def test_a_gateway_that_dies_again_after_coming_back_is_a_new_death() -> None:
    engine = Engine(config())
    feed(engine, [birth(T0 + 1000, K1=(MachineState.RUNNING, None, T0)), heartbeat(T0 + MIN), will()])
    assert engine.state.gateways["s/w/gw-1"].dead_since_ms == T0 + MIN
    feed(engine, [birth(T0 + 6 * MIN, K1=(MachineState.RUNNING, None, T0)), heartbeat(T0 + 7 * MIN), will()])
    assert engine.state.gateways["s/w/gw-1"].dead_since_ms == T0 + 7 * MIN


def test_machines_are_judged_on_their_own_gateway_s_time() -> None:
    # gw-2 runs 30 minutes ahead of gw-1 (gw-1 drains a backlog): gw-1's machine was down for 5 minutes
    # only, and nothing may fire about it on gw-2's say-so (gw-1's silence is gw-1's own alert).
    engine = Engine(config())
    ahead = [heartbeat(T0 + 30 * MIN + s * 10_000, gateway="gw-2") for s in range(6)]
    out = feed(
        engine,
        [
            change(T0, MachineState.DOWN, "yarn_break"),
            *ahead,
            heartbeat(T0 + 4 * MIN),
            change(T0 + 5 * MIN, MachineState.RUNNING, prev=MachineState.DOWN, prev_reason="yarn_break"),
        ],
    )
    assert [(r.rule, r.subject, r.status) for r in out] == [("gw", "gw-1", Status.FIRING)]


def test_an_alert_fires_and_resolves_at_its_gateway_s_time_while_another_runs_ahead() -> None:
    engine = Engine(config())
    feed(engine, [change(T0, MachineState.DOWN, "yarn_break"), heartbeat(T0 + 50 * MIN, gateway="gw-2")])
    (fired,) = feed(engine, [heartbeat(T0 + 10 * MIN)])
    assert (fired.condition_ms, fired.fired_ms, fired.changed_ms) == (T0 + 10 * MIN, T0 + 10 * MIN, T0 + 50 * MIN)
    back = change(T0 + 11 * MIN, MachineState.RUNNING, prev=MachineState.DOWN, prev_reason="yarn_break")
    assert feed(engine, [back, heartbeat(T0 + 11 * MIN + 59_000)]) == []
    (resolved,) = feed(engine, [heartbeat(T0 + 12 * MIN)])
    assert (resolved.status, resolved.resolved_ms) == (Status.RESOLVED, T0 + 11 * MIN)


def test_a_meta_after_the_first_sample_judges_that_sample() -> None:
    # The gateway sends its first readings before the machines' metas.
    meta = MachineMeta(**knit, ts=T0, model="m", line="l", rated_speed=1.0, speed_unit="m/s", service_interval_h=200.0)
    engine = Engine(config())
    out = feed(engine, [telemetry(T0, run_ms=201 * 3_600_000), meta])
    assert [(r.rule, r.started_ms) for r in out] == [("service", T0)]


BEAT_MS = 10_000
STOPS, WINDOW_MS, HOLD_DOWN_MS = 3, 10 * MIN, MIN  # the test rules


def stop_problems(starts: Sequence[int]) -> list[tuple[int, int, int]]:
    """(started, condition, clear) of each problem that stops beginning at ``starts`` make, by the rule's
    definition: the rule holds from the 3rd stop within 10 minutes until fewer than 3 are left in the trailing
    10 minutes; stretches less than the hold-down apart are one problem."""
    held = [(starts[i + STOPS - 1], starts[i] + WINDOW_MS) for i in range(len(starts) - STOPS + 1)]
    merged: list[list[int]] = []
    for on, off in held:
        if on >= off:
            continue
        if merged and on - merged[-1][1] < HOLD_DOWN_MS:
            merged[-1][1] = max(merged[-1][1], off)
        else:
            merged.append([on, off])
    return [(min(s for s in starts if s > on - WINDOW_MS), on, off) for on, off in merged]


@settings(max_examples=300, deadline=None)
@given(
    first_ms=st.integers(0, 10 * MIN),
    gaps_ms=st.lists(st.integers(20_000, 6 * MIN), min_size=2, max_size=8),
    down_ms=st.integers(1_000, 19_999),
    other_after=st.sets(st.integers(0, 8), max_size=STOPS - 1),
    beat_phase_ms=st.integers(0, BEAT_MS - 1),
    lag_ms=st.integers(0, 40 * MIN),
)
@example(first_ms=0, gaps_ms=[MIN] * 5, down_ms=19_999, other_after={0, 1}, beat_phase_ms=0, lag_ms=2 * MIN)
def test_one_alert_per_problem_of_repeated_stops_whatever_the_alignment_and_the_other_gateways(
    *, first_ms: int, gaps_ms: list[int], down_ms: int, other_after: set[int], beat_phase_ms: int, lag_ms: int
) -> None:
    """Stops of one reason, as many alerts as the rule's definition makes problems (each from its 3rd stop,
    resolved when it has cleared), whatever falls where: heartbeats, fewer than 3 stops of another reason on
    the way, a second gateway running ahead of this one."""
    starts = [T0 + first_ms]
    for gap in gaps_ms:
        starts.append(starts[-1] + gap)
    problems = stop_problems(starts)
    # A clear stretch just over the hold-down resolves or not by where the heartbeats fall: keep out of it.
    gaps_between = [nxt[1] - prev[2] for prev, nxt in itertools.pairwise(problems)]
    assume(all(not HOLD_DOWN_MS <= gap < HOLD_DOWN_MS + 2 * BEAT_MS for gap in gaps_between))
    events: list[Message] = []
    for i, start in enumerate(starts):
        events.append(change(start, MachineState.DOWN, "yarn_break"))
        last = "yarn_break"
        if i in other_after:  # the yarn break turns out to be a fabric drop-off too
            last = "fabric_drop_off"
            events.append(change(start + down_ms // 2, MachineState.DOWN, last, MachineState.DOWN, "yarn_break"))
        events.append(change(start + down_ms, MachineState.RUNNING, prev=MachineState.DOWN, prev_reason=last))
    end = starts[-1] + WINDOW_MS + 2 * HOLD_DOWN_MS + BEAT_MS
    beats = [heartbeat(t) for t in range(T0 + beat_phase_ms, end, BEAT_MS)]
    own = sorted([*events, *beats], key=lambda m: m.ts)
    ahead = [heartbeat(t, gateway="gw-2") for t in range(T0, end + lag_ms, BEAT_MS)]
    engine = Engine(config())
    out = [
        r for r in feed(engine, received(arrivals(own, lag_ms=lag_ms), arrivals(ahead))) if r.subject_type == "machine"
    ]

    assert [(r.rule, r.detail, r.status) for r in out] == [
        ("stops", "yarn_break", status) for _ in problems for status in (Status.FIRING, Status.RESOLVED)
    ]
    assert len({r.alert_id for r in out}) == len(problems)
    for (fired, resolved), (started, condition, clear) in zip(
        zip(out[::2], out[1::2], strict=True), problems, strict=True
    ):
        assert fired.alert_id == resolved.alert_id
        assert (fired.started_ms, fired.condition_ms, fired.fired_ms) == (started, condition, condition)
        assert resolved.resolved_ms is not None
        assert clear <= resolved.resolved_ms < clear + BEAT_MS


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


def test_an_older_sample_redelivered_does_not_break_a_run_of_samples_over_the_limit() -> None:
    card: dict[str, Any] = {**common, "machine_type": MachineType.CARDING, "machine_id": "C1"}
    engine = Engine(config())
    cool = telemetry(T0, temperature=50.0, machine=card)
    hot = [telemetry(T0 + i * 30_000, temperature=65.0, machine=card) for i in range(1, 8)]
    out = feed(engine, [cool, *hot[:3], cool, *hot[3:]])
    assert [(r.rule, r.started_ms) for r in out] == [("hot", T0 + 30_000)]


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


def test_a_snapshot_keeps_a_death_and_the_last_sample() -> None:
    engine = Engine(config())
    feed(engine, [birth(T0 + 1000, K1=(MachineState.RUNNING, None, T0)), telemetry(T0 + MIN), will()])
    restored = Engine(config(), EngineState.model_validate_json(engine.state.model_dump_json()))
    assert restored.state.gateways["s/w/gw-1"].dead_since_ms == T0 + MIN
    assert restored.state.machines["s/w/K1"].last_sample == telemetry(T0 + MIN)


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
