"""The incremental alert engine against the reference, judging every subject at every message (pure, no
services): the same transitions in the same order over hostile histories and whole plant stories; its state as
rows, written at each commit, always describes the whole state, and an engine restarted from them carries on
as if nothing happened; a message judges what it touches, however large the fleet; the heap of deadlines."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from alerts.deadlines import Deadlines
from alerts.engine import Engine, EngineState, read_filters
from alerts.lifecycle import AlertRecord, Status
from alerts.rows import Rows, all_rows, changed_rows, state_from_rows
from alerts.rules import RepeatedStopsRule, load_config
from alerts.store import Store
from ftel.contract import topic_of
from ftel.contract.models import (
    GatewayStatus,
    Heartbeat,
    MachineMeta,
    MachineNow,
    Message,
    Rollup,
    StateChange,
    StateWindow,
    Telemetry,
)
from ftel.contract.states import DOWN_REASONS, MachineState, MachineType
from ftel.plant.layout import Plant
from ftel.storage.seen import Seen
from gateway.core import GatewayTiming
from ingest.deaths import death_at
from loadtest.faults import plan_faults
from simulators.plant import generate_plant
from tests import sim_start
from tests.plant_replay import received, run_gateway
from tests.unit.test_alerts_core import T0, config
from tests.unit.test_alerts_replay import fault_story_messages

MIN = 60_000
# Two gateways: gw-1 with two knitting machines, gw-2 with a carding machine (the overheat rule's type).
FLEET = {
    "K1": ("gw-1", MachineType.KNITTING),
    "K2": ("gw-1", MachineType.KNITTING),
    "C1": ("gw-2", MachineType.CARDING),
}
GATEWAYS = ("gw-1", "gw-2")
# How far a gateway's time moves before its next message: not at all, a little, up to past every limit.
ADVANCES_MS = (0, 1, 500, 5_000, 10_000, 20_000, 30_000, 59_999, 60_000, 120_000, 400_000)
KINDS = ("change", "change", "change", "telemetry", "telemetry", "heartbeat", "heartbeat", "meta", "birth", "will",
         "death", "reboot", "again")  # fmt: skip
STATES = (MachineState.RUNNING, MachineState.DOWN, MachineState.DOWN, MachineState.IDLE, MachineState.OFFLINE,
          MachineState.MAINTENANCE)  # fmt: skip
STEPS = st.lists(
    st.tuples(st.sampled_from(GATEWAYS), st.sampled_from(ADVANCES_MS), st.sampled_from(KINDS), st.integers(0, 9_999)),
    min_size=1,
    max_size=250,
)


def history(steps: Iterable[tuple[str, int, str, int]]) -> list[Message]:
    """Messages of the two gateways from drawn steps: state changes, telemetry over and under every limit,
    heartbeats, metas, births (re-stating, sometimes with an earlier start), last wills, own deaths, reboots,
    and messages sent again (at least once), each gateway's time moving on by its own steps."""
    now = dict.fromkeys(GATEWAYS, T0)
    boot = dict.fromkeys(GATEWAYS, T0)
    seq = dict.fromkeys(GATEWAYS, 1)
    state: dict[str, tuple[MachineState, str | None]] = dict.fromkeys(FLEET, (MachineState.RUNNING, None))
    out: list[Message] = []
    for gateway, advance, kind, pick in steps:
        now[gateway] += advance
        seq[gateway] += 1
        mine = [m for m, (g, _) in FLEET.items() if g == gateway]
        types = {m: FLEET[m][1] for m in mine}
        machine = mine[pick % len(mine)]
        base: dict[str, Any] = {"site": "s", "workshop": "w", "gateway_id": gateway, "seq": seq[gateway]}
        about: dict[str, Any] = {**base, "ts": now[gateway], "machine_type": types[machine], "machine_id": machine}
        if kind == "change":
            new = STATES[pick % len(STATES)]
            reason = DOWN_REASONS[types[machine]][pick // 7 % 2] if new is MachineState.DOWN else None
            prev, prev_reason = state[machine]
            out.append(
                StateChange(
                    **about, state=new, reason=reason, prev_state=prev, prev_reason=prev_reason, prev_duration_ms=0
                )
            )
            state[machine] = (new, reason)
        elif kind == "telemetry":
            out.append(
                Telemetry(
                    **about,
                    state=state[machine][0],
                    speed=(0.3, 1.0)[pick % 2],
                    temperature=(40.0, 70.0, 70.0)[pick // 2 % 3],
                    units_total=0,
                    defects_total=0,
                    run_ms_since_service=(0, 300 * 3_600_000)[pick // 6 % 2],
                )
            )
        elif kind == "heartbeat":
            beat = {"uptime_ms": 0, "machines": len(mine), "spool_depth": 0, "spool_dropped": 0}
            out.append(Heartbeat(**base, ts=now[gateway], boot_id=boot[gateway], **beat))
        elif kind == "meta":
            spec = {"model": "m", "line": "l", "rated_speed": 1.0, "speed_unit": "u", "service_interval_h": 200.0}
            out.append(MachineMeta(**about, **spec))
        elif kind == "birth":
            earlier = (0, 60_000)[pick % 2]
            states = {
                m: MachineNow(state=state[m][0], reason=state[m][1], since_ms=now[gateway] - earlier) for m in mine
            }
            out.append(
                GatewayStatus(
                    **base, ts=now[gateway], online=True, boot_id=boot[gateway], machines=types, states=states
                )
            )
        elif kind in ("will", "death"):
            will = kind == "will"
            out.append(
                GatewayStatus(
                    **{**base, "seq": 0 if will else base["seq"]},
                    ts=boot[gateway] if will else now[gateway],
                    online=False,
                    will=will,
                    boot_id=boot[gateway],
                    machines=types,
                )
            )
        elif kind == "reboot":
            boot[gateway] = now[gateway]
        elif out:
            out.append(out[-1 - pick % min(len(out), 20)])
    return out


def transitions(engine: Engine, messages: Sequence[Message]) -> list[list[AlertRecord]]:
    return [engine.observe(m) for m in messages]


@settings(max_examples=400, deadline=None)
@given(STEPS)
def test_judging_what_a_message_touches_gives_the_transitions_of_judging_everything(
    steps: list[tuple[str, int, str, int]],
) -> None:
    messages = history(steps)
    incremental, reference = Engine(config()), Engine(config(), rescan=True)
    assert transitions(incremental, messages) == transitions(reference, messages)
    assert seen_by_rules(incremental) == seen_by_rules(reference)


def seen_by_rules(engine: Engine) -> EngineState:
    """The engine's state without stops older than every repeated-stops window: the reference forgets them
    at every message, the incremental engine when it next judges their machine; no rule can see them."""
    state = engine.state.model_copy(deep=True)
    kept_ms = max(int(r.window_minutes * 60_000) for r in engine.config.rules if isinstance(r, RepeatedStopsRule))
    for machine in state.machines.values():
        gateway = state.gateways[f"{machine.site}/{machine.workshop}/{machine.gateway_id}"]
        oldest_kept = gateway.last_message_ms - kept_ms
        machine.stops = {
            reason: kept for reason, starts in machine.stops.items() if (kept := [t for t in starts if t > oldest_kept])
        }
    return state


def the_plant_story(start_ms: int, plant: Plant, minutes: int) -> list[Message]:
    """A plant's gateways, lagging one another, through the gateway core."""
    timing = GatewayTiming(60_000, 30_000, 10_000, 0, telemetry_spread=True)
    end = start_ms + minutes * MIN
    return received(
        *(
            run_gateway(
                plant,
                w.id,
                start_ms=start_ms,
                first_read_ms=start_ms,
                end_ms=end,
                steps_ms=[1_000, 3_000],
                timing=timing,
                boot_id=start_ms + i,
            ).arrivals(lag_ms=i * 3_000)
            for i, w in enumerate(plant.workshops)
        )
    )


def test_a_plant_with_the_load_test_s_faults_gives_the_transitions_of_judging_everything() -> None:
    plant = generate_plant(100, per_workshop=50, site="s")
    plan = plan_faults(plant, load_config(), 16 * 60)
    messages = the_plant_story(1_795_402_800_000, plan.with_faults(plant), 16)
    incremental, reference = Engine(load_config()), Engine(load_config(), rescan=True)
    out = transitions(incremental, messages)
    assert out == transitions(reference, messages)
    fired = {(r.rule, r.subject) for records in out for r in records if r.status is Status.FIRING}
    assert fired == {(f.rule, f.machine_id) for f in plan.faults}


def test_the_fault_story_gives_the_transitions_of_judging_everything() -> None:
    incremental, reference = Engine(load_config()), Engine(load_config(), rescan=True)
    messages = list(
        fault_story_messages(sim_start.DAY_MS, [[1_500], [2_500], [1_000], [3_000]], [0, 10_000, 0, 20_000])
    )
    out = transitions(incremental, messages)
    assert out == transitions(reference, messages)
    assert sum(map(len, out)) == 10  # five problems, each fired and resolved


def test_a_message_judges_what_it_touches_however_large_the_fleet() -> None:
    judged: dict[int, float] = {}
    for machines in (100, 1_000):
        messages = the_plant_story(1_795_402_800_000, generate_plant(machines, per_workshop=50, site="s"), 5)
        engine = Engine(load_config())
        transitions(engine, messages)
        judged[machines] = engine.judged / len(messages)
    print("subjects judged per message:", judged)
    # Its machine and its gateway, and now and then what came due; judging everything would be the fleet.
    assert all(per_message < 2.5 for per_message in judged.values()), judged


class MemoryStore:
    """What the store's state table does with the rows of each commit, in memory (the store itself is
    tested against sqlite below)."""

    def __init__(self) -> None:
        self.head: str | None = None
        self.rows: dict[tuple[str, str], str] = {}

    def commit(self, rows: Rows) -> None:
        self.head = rows.head
        for kind, key in rows.deletes:
            self.rows.pop((kind, key), None)
        for kind, key, body in rows.upserts:
            self.rows[kind, key] = body

    def state(self) -> EngineState:
        assert self.head is not None
        return state_from_rows(self.head, [(kind, key, body) for (kind, key), body in self.rows.items()])


@settings(max_examples=200, deadline=None)
@given(STEPS, st.integers(1, 40), st.sets(st.integers(0, 250), max_size=4))
def test_rows_of_what_changed_describe_the_whole_state_and_a_restart_carries_on(
    steps: list[tuple[str, int, str, int]], commit_every: int, restarts: set[int]
) -> None:
    messages = history(steps)
    steady = Engine(config())
    store = MemoryStore()
    engine = Engine(config())
    for n, message in enumerate(messages):
        assert engine.observe(message) == steady.observe(message)
        if n % commit_every == commit_every - 1 or n in restarts:
            store.commit(changed_rows(engine.state, engine.take_changes()))
            assert store.state() == engine.state
        if n in restarts:  # killed right after a commit: the next engine starts from the rows
            engine = Engine(config(), store.state())


def test_store_keeps_rows_in_the_order_first_written_and_deletes_what_went(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite")
    assert store.snapshot() is None
    store.commit('{"clock_ms": 1}', [], upserts=[("machine", "b", "1"), ("machine", "a", "2"), ("open", "x", "3")])
    store.commit('{"clock_ms": 2}', [], upserts=[("machine", "b", "4")], deletes=[("open", "x")])
    assert store.rows() == [("machine", "b", "4"), ("machine", "a", "2")]
    assert EngineState.model_validate_json(store.snapshot() or "").clock_ms == 2
    store.close()


def test_an_engine_comes_back_whole_from_its_rows_in_sqlite(tmp_path: Path) -> None:
    messages = history([(GATEWAYS[i % 2], ADVANCES_MS[i % 11], KINDS[i % 13], i * 37) for i in range(300)])
    engine = Engine(config())
    store = Store(tmp_path / "a.sqlite")
    for n, message in enumerate(messages):
        engine.observe(message)
        if n % 25 == 0:
            rows = changed_rows(engine.state, engine.take_changes())
            store.commit(rows.head, [], upserts=rows.upserts, deletes=rows.deletes)
    rows = changed_rows(engine.state, engine.take_changes())
    store.commit(rows.head, [], upserts=rows.upserts, deletes=rows.deletes)
    assert state_from_rows(store.snapshot() or "", store.rows()) == engine.state
    assert len(store.rows()) == len(all_rows(engine.state).upserts)
    store.close()


def test_a_whole_snapshot_from_before_rows_still_loads() -> None:
    engine = Engine(config())
    transitions(engine, history([(g, 60_000, k, 3) for g in GATEWAYS for k in ("birth", "change", "heartbeat")]))
    assert state_from_rows(engine.state.model_dump_json(), []) == engine.state


def test_delivered_outbox_rows_are_purged_after_their_keep_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite")
    store.commit("{}", [("mqtt", "a:firing", "x"), ("mqtt", "b:firing", "y"), ("mqtt", "c:firing", "z")])
    first, second, _ = store.due("mqtt", limit=10)
    store.delivered([first])
    store.delivered([second])
    assert store.purge_delivered(3600, now=1e12) == 2
    assert store.pending() == 1
    assert store.purge_delivered(3600) == 0
    store.close()


def test_the_engine_dates_a_death_as_ingest_writes_it() -> None:
    will = GatewayStatus(
        site="s", workshop="w", gateway_id="gw-1", seq=0, ts=T0, online=False, will=True, boot_id=T0,
        machines={"K1": MachineType.KNITTING, "K2": MachineType.KNITTING},
    )  # fmt: skip
    engine = Engine(config())
    engine.observe(Heartbeat(site="s", workshop="w", gateway_id="gw-1", seq=2, ts=T0 + MIN, boot_id=T0, uptime_ms=0,
                             machines=2, spool_depth=0, spool_dropped=0))  # fmt: skip
    engine.observe(will)
    # One rule (ftel/contract/liveness.py): the alert's start and the OFFLINE points ingest writes agree.
    assert engine.state.gateways["s/w/gw-1"].dead_since_ms == T0 + MIN
    assert death_at(will, Seen(T0 + MIN, T0)) == T0 + MIN


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("wake"), st.sampled_from("abcd"), st.sampled_from(("", "g1")), st.integers(0, 50)),
            st.tuples(st.just("cancel"), st.sampled_from("abcd"), st.just(""), st.just(0)),
            st.tuples(st.just("due"), st.just(""), st.sampled_from(("", "g1")), st.integers(0, 50)),
        ),
        max_size=60,
    )
)
def test_deadlines_wake_each_subject_by_the_earliest_moment_it_asked_for(
    ops: list[tuple[str, str, str, int]],
) -> None:
    deadlines = Deadlines()
    model: dict[str, tuple[str, int]] = {}
    for op, subject, clock, ms in ops:
        if op == "wake":
            deadlines.wake(subject, clock, ms)
            current = model.get(subject)
            if current is None or current[0] != clock or ms < current[1]:
                model[subject] = (clock, ms)
        elif op == "cancel":
            deadlines.cancel(subject)
            model.pop(subject, None)
        else:
            due = {s for s, (c, at) in model.items() if c == clock and at <= ms}
            assert set(deadlines.due(clock, ms)) == due
            for s in due:
                del model[s]
        assert len(deadlines) == len(model)


def test_deadlines_drop_their_skipped_entries_as_they_grow() -> None:
    deadlines = Deadlines()
    for at in range(100_000, 0, -1):  # one subject asking for ever earlier moments
        deadlines.wake("a", "", at)
    assert len(deadlines._heaps[""]) <= 2_000
    assert deadlines.due("", 100_000) == ["a"]


def test_the_kinds_the_rules_do_not_read_change_no_alert() -> None:
    """The worker subscribes to the kinds the rules read (``read_filters``): over the load test's faults, an
    engine that never sees the rest of the stream (windows, roll-ups) raises the same alerts as one that sees it
    all, at the same moments."""
    plant = generate_plant(100, per_workshop=50, site="s")
    plan = plan_faults(plant, load_config(), 16 * 60)
    messages = the_plant_story(1_795_402_800_000, plan.with_faults(plant), 16)
    filters = read_filters("s")
    read = [m for m in messages if any(topic_matches_sub(f, topic_of(m)) for f in filters)]
    assert any(isinstance(m, StateWindow) for m in messages)
    assert not any(isinstance(m, StateWindow | Rollup) for m in read)
    everything, what_is_read = Engine(load_config()), Engine(load_config())
    fired = [r for m in messages for r in everything.observe(m)]
    assert [r for m in read for r in what_is_read.observe(m)] == fired
    assert {(f.rule, f.machine_id) for f in plan.faults} <= {(r.rule, r.subject) for r in fired}
