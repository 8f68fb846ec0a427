"""The gateway's core and spool without services: a restart from a checkpoint carries on exactly as if the
gateway had never stopped (no window overwritten with less, no phantom stop, continuous sequence numbers), and
the spool keeps what it holds, in order, bounded and counted, across a reopen."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftel.contract.models import GatewayStatus, Message, Rollup, StateChange, StateWindow, Telemetry
from ftel.contract.states import MachineState
from ftel.plant.layout import default_plant
from ftel.settings import SimulationSettings
from gateway.core import CoreState, GatewayCore, GatewayTiming
from gateway.runner import _CHECKPOINT, Gateway, _Checkpoint
from gateway.spool import Spool, SpoolEntry
from gateway.tracker import Origin
from simulators.driver import SimulatedDriver
from simulators.machine import plant_models
from tests.unit.test_gateway_link import FakeLink, seq_of

WINDOW = 60_000
START = 1_795_000_000_000 - 1_795_000_000_000 % WINDOW
TIMING = GatewayTiming(WINDOW, 30_000, 10_000, 0.1, telemetry_spread=False)


def workshop_core(
    state: CoreState | None = None, *, start: int = START
) -> tuple[GatewayCore, dict[str, SimulatedDriver]]:
    plant = default_plant()
    knit = plant.workshop("knit")
    drivers = {m.spec.id: SimulatedDriver(m) for _, m in plant_models(plant, start_ms=start, workshop="knit")}
    core = GatewayCore(
        Origin(plant.site, knit.id, knit.gateway_id),
        [d.info for d in drivers.values()],
        TIMING,
        boot_id=START,
        state=state,
    )
    return core, drivers


def run(core: GatewayCore, drivers: dict[str, SimulatedDriver], after: int, until: int) -> list[Message]:
    out: list[Message] = []
    for at in core.read_times(after, until):
        out.extend(core.observe(at, {mid: d.read(at) for mid, d in drivers.items()}))
    return out


def full_windows(messages: list[Message]) -> dict[tuple[str, int], tuple[object, ...]]:
    """The last word on each (machine, window), as InfluxDB keeps it (a later point overwrites)."""
    return {
        (m.machine_id, m.window_start): (
            m.state_ms,
            m.down_ms_by_reason,
            m.stops_by_reason,
            m.units,
            m.defects,
            m.partial,
        )
        for m in messages
        if isinstance(m, StateWindow)
    }


@settings(max_examples=8, deadline=None)
@given(stop_at=st.integers(1, 3600 - 1), clean=st.booleans())
def test_a_gateway_restarted_from_its_checkpoint_ends_exactly_where_an_uninterrupted_one_does(
    stop_at: int, clean: bool
) -> None:
    end, stop = START + 3_600_000, START + stop_at * 1000
    core, drivers = workshop_core()
    first_read = core.observe(START, {mid: d.read(START) for mid, d in drivers.items()})
    whole = [*first_read, *run(core, drivers, START, end)]

    core, drivers = workshop_core()
    before = [
        *core.observe(START, {mid: d.read(START) for mid, d in drivers.items()}),
        *run(core, drivers, START, stop),
    ]
    if clean:
        before.extend(core.close(stop))  # a clean stop sends partial windows; the full ones overwrite them
    saved = _CHECKPOINT.dump_json(_Checkpoint("fp", core.state))
    restored, drivers = workshop_core(_CHECKPOINT.validate_json(saved).core)
    last = restored.last_ms
    assert last is not None
    for driver in drivers.values():
        assert driver.resume(last)
    after = run(restored, drivers, last, end)
    resumed = [*before, *after]

    assert full_windows(resumed) == full_windows(whole)
    # The same changes (each machine's in its order; across machines the order of reads may differ).
    changes = sorted((m.machine_id, m.ts, m.state, m.prev_duration_ms) for m in resumed if isinstance(m, StateChange))
    expected = sorted((m.machine_id, m.ts, m.state, m.prev_duration_ms) for m in whole if isinstance(m, StateChange))
    assert changes == expected
    seqs = [m.seq for m in resumed]
    assert seqs == list(range(1, len(seqs) + 1)), "sequence numbers run on across the restart"


def test_a_birth_re_states_every_machine_after_everything_sent_before() -> None:
    core, drivers = workshop_core()
    sent = [
        *core.observe(START, {mid: d.read(START) for mid, d in drivers.items()}),
        *run(core, drivers, START, START + 600_000),
    ]
    birth = core.birth()
    assert isinstance(birth, GatewayStatus)
    assert birth.online
    assert set(birth.states) == set(drivers)
    assert birth.ts > max(m.ts for m in sent)
    for machine_id, now in birth.states.items():
        last_change = [m for m in sent if isinstance(m, StateChange) and m.machine_id == machine_id]
        if last_change:
            assert (now.state, now.since_ms) == (last_change[-1].state, last_change[-1].ts)
        else:
            assert now.since_ms == START  # first seen at the start, unchanged since


def test_the_spool_keeps_its_messages_and_checkpoint_across_a_reopen_bounded_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_messages=3)
    kept = spool.commit([SpoolEntry(seq, f"t/{seq}", b"x" * seq, seq == 1) for seq in range(1, 6)], "cp-1")
    assert [e.seq for e in kept] == [1, 2, 3]
    assert spool.dropped == 2
    assert spool.confirm([2, 2, 99]) == 1
    spool.close()
    again = Spool(tmp_path, max_messages=3)
    assert again.seqs() == [1, 3]
    assert again.checkpoint() == "cp-1"
    assert again.dropped == 2
    assert list(again.read([3, 2, 1])) == [SpoolEntry(3, "t/3", b"xxx", False), SpoolEntry(1, "t/1", b"x", True)]


@pytest.mark.parametrize("power_safe", [True, False])
def test_what_the_spool_committed_survives_its_process_being_killed(tmp_path: Path, power_safe: bool) -> None:
    """Both kinds of spool (a simulated gateway's syncs the disk only at the WAL's checkpoints): a commit is kept
    through kill -9 of the process that made it."""
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys; from pathlib import Path; from gateway.spool import Spool, SpoolEntry\n"
            f"spool = Spool(Path(sys.argv[1]), max_messages=10, power_safe={power_safe})\n"
            "spool.commit([SpoolEntry(1, 't/1', b'one', False)], 'cp-1', {'m-1': 'tracker'})\n"
            "os.kill(os.getpid(), signal.SIGKILL)",
            str(tmp_path),
        ],
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL
    again = Spool(tmp_path, max_messages=10)
    assert (again.seqs(), again.checkpoint(), again.checkpoint_parts()) == ([1], "cp-1", {"m-1": "tracker"})
    assert SimulationSettings().spool_power_safe is False  # simulated gateways' default; a real one is always safe


def test_a_message_goes_out_first_as_committed_and_again_as_read_back_from_the_spool() -> None:
    link = FakeLink()
    core, drivers = workshop_core()
    g = Gateway(
        core.origin, list(drivers.values()), now_ms=lambda: START, timing=TIMING, link=link, spool_max_messages=1_000
    )
    g.begin(first_read_ms=START)
    g.tick()
    first = list(link.sent)
    assert first
    assert [seq_of(p) for _, p, _ in first] == g.spool.seqs()
    link.sent.clear()
    link.connect()  # a reconnect: everything unconfirmed goes again, read back from the spool
    g.tick()
    # (then a new birth and the machines' metas)
    assert [(t, p) for t, p, _ in link.sent[: len(first)]] == [(t, p) for t, p, _ in first]


def test_a_machine_whose_driver_cannot_tell_the_gap_is_offline_for_it_and_no_stop_is_counted() -> None:
    core, drivers = workshop_core()
    core.observe(START, {mid: d.read(START) for mid, d in drivers.items()})
    run(core, drivers, START, START + 120_000)
    machine = next(iter(drivers))
    gap = core.unseen_since(machine, START + 120_000)
    assert [m.state for m in gap if isinstance(m, StateChange)] == [MachineState.OFFLINE]
    later = START + 300_000
    after = core.observe(later, {machine: drivers[machine].read(later)})
    windows = [m for m in after if isinstance(m, StateWindow) and m.machine_id == machine]
    offline = sum(w.state_ms[MachineState.OFFLINE] for w in windows)
    assert offline == 180_000  # windows 2, 3 and 4 of the run, closed by the reading at 5 minutes
    assert all(sum(w.stops_by_reason.values()) == 0 for w in windows)


def last_word(
    messages: list[Message],
) -> tuple[dict[tuple[str, int], StateWindow], dict[tuple[str, int, int], Rollup], dict[tuple[str, int], Rollup]]:
    """What InfluxDB keeps (a later point overwrites): machine windows, workshop roll-ups, machine hours."""
    windows = {(m.machine_id, m.window_start): m for m in messages if isinstance(m, StateWindow)}
    rollups = {
        (m.machine_type.value, m.window_start, m.window_ms): m
        for m in messages
        if isinstance(m, Rollup) and m.machine_id is None
    }
    machine_hours = {
        (m.machine_id, m.window_start): m for m in messages if isinstance(m, Rollup) and m.machine_id is not None
    }
    return windows, rollups, machine_hours


@settings(max_examples=6, deadline=None)
@given(stop_at=st.integers(1, 2 * 3600 - 1))
def test_roll_ups_equal_the_sum_of_the_windows_sent_through_a_restart(stop_at: int) -> None:
    hour_start = START - START % 3_600_000
    end, stop = hour_start + 2 * 3_600_000, hour_start + stop_at * 1000
    core, drivers = workshop_core(start=hour_start)
    sent = [*core.observe(hour_start, {m: d.read(hour_start) for m, d in drivers.items()})]
    sent += run(core, drivers, hour_start, stop)
    sent += core.close(stop)  # partial windows and roll-ups, overwritten after the restart
    saved = _CHECKPOINT.dump_json(_Checkpoint("fp", core.state))
    core, drivers = workshop_core(_CHECKPOINT.validate_json(saved).core, start=hour_start)
    for driver in drivers.values():
        driver.resume(stop)
    sent += run(core, drivers, stop, end)
    windows, rollups, machine_hours = last_word(sent)
    assert not any(r.partial for r in [*rollups.values(), *machine_hours.values()]), "partials all overwritten"
    minutes = {k: r for k, r in rollups.items() if k[2] == WINDOW}
    assert len(minutes) == 120  # one knitting roll-up per minute of the two hours
    for (_, window_start, _), rollup in minutes.items():
        raw = [w for (_, start), w in windows.items() if start == window_start]
        assert rollup.machines == len(raw) == len(drivers)
        for state in MachineState:
            assert rollup.state_ms[state] == sum(w.state_ms[state] for w in raw)
        assert rollup.units == sum(w.units for w in raw)
        assert sum(rollup.stops_by_reason.values()) == sum(sum(w.stops_by_reason.values()) for w in raw)
    hours = {k: r for k, r in rollups.items() if k[2] == 3_600_000}
    assert sorted(k[1] for k in hours) == [hour_start, hour_start + 3_600_000]
    for (_, start, _), hour in hours.items():
        parts = [r for (_, s, _), r in minutes.items() if start <= s < start + 3_600_000]
        assert hour.state_ms == {s: sum(p.state_ms[s] for p in parts) for s in MachineState}
        assert hour.down_ms_by_reason == {
            reason: sum(p.down_ms_by_reason.get(reason, 0) for p in parts)
            for reason in {r for p in parts for r in p.down_ms_by_reason}
        }
    assert len(machine_hours) == 2 * len(drivers)
    for (machine_id, start), hour in machine_hours.items():
        in_hour = [w for (m, s), w in windows.items() if m == machine_id and start <= s < start + 3_600_000]
        assert len(in_hour) == 60
        assert hour.state_ms == {s: sum(w.state_ms[s] for w in in_hour) for s in MachineState}
        assert hour.units == sum(w.units for w in in_hour)


def test_spread_telemetry_samples_each_machine_once_an_interval_at_its_own_offset() -> None:
    plant = default_plant()
    knit = plant.workshop("knit")
    drivers = {m.spec.id: SimulatedDriver(m) for _, m in plant_models(plant, start_ms=START, workshop="knit")}
    spread = GatewayTiming(WINDOW, 30_000, 10_000, 0.1, telemetry_spread=True)
    core = GatewayCore(
        Origin(plant.site, knit.id, knit.gateway_id), [d.info for d in drivers.values()], spread, boot_id=START
    )
    sent: list[Message] = list(core.observe(START, {m: d.read(START) for m, d in drivers.items()}))
    for at in range(START + 1000, START + 600_000 + 1, 1000):  # read every second for ten minutes
        sent += core.observe(at, {m: d.read(at) for m, d in drivers.items()})
    samples = [m for m in sent if isinstance(m, Telemetry)]
    per_machine = {machine: [m.ts for m in samples if m.machine_id == machine] for machine in drivers}
    assert all(len(ts) in (20, 21) for ts in per_machine.values())  # one every 30 s (and the first sight)
    assert len({(ts[-1] - START) % 30_000 for ts in per_machine.values()}) > 5, "not all on the same offset"


def test_a_checkpoint_written_in_parts_tick_by_tick_restores_the_whole_core_exactly(tmp_path: Path) -> None:
    """Between edges only the machines read are written again, at an edge their hours so far and the windows held
    from it, and what was sent goes; what a restart reads back at any tick is the whole state."""
    plant = default_plant()
    knit = plant.workshop("knit")
    clock = [START]

    def gateway() -> Gateway:
        drivers = [SimulatedDriver(m) for _, m in plant_models(plant, start_ms=START, workshop="knit")]
        return Gateway(
            Origin(plant.site, knit.id, knit.gateway_id),
            drivers,
            now_ms=lambda: clock[0],
            timing=GatewayTiming(WINDOW, 30_000, 10_000, 0.1, telemetry_spread=True, close_phase_ms=7_000),
            link=FakeLink(),
            spool_max_messages=100_000,
            state_dir=tmp_path,
        )

    def whole(g: Gateway) -> object:
        return _CHECKPOINT.dump_python(_Checkpoint("", g.core.state))

    first = gateway()
    first.begin(first_read_ms=START)
    hour_end = START - START % 3_600_000 + 3_600_000
    looked = set()
    # 70 minutes of plant time in ticks of 6 s: changes, samples, edges, held windows, an hour's end.
    for tick in range(700):
        clock[0] += 6_000
        first.tick()
        if tick == 100:
            parts_at_ten_minutes = first.spool.checkpoint_parts()
        if first.core.state.held and (tick % 50 == 0 or hour_end <= clock[0] < hour_end + 7_000):
            looked.add(clock[0] >= hour_end)
            assert whole(gateway()) == whole(first), f"restored at tick {tick}"
    assert looked == {False, True}, "restored before and after the hour's end, with windows held"
    assert not first.resumed
    again = gateway()
    assert again.resumed
    assert whole(again) == whole(first)
    # A build from before the parts, run after them, writes every tracker, hour and held window into the row and
    # leaves the parts as they were: the row is the newer record, and the next start takes it.
    row = _CHECKPOINT.validate_json(first.spool.checkpoint() or "")
    older = _CHECKPOINT.dump_json(_Checkpoint(row.fingerprint, first.core.state)).decode()
    first.spool.commit([], older, parts_at_ten_minutes)
    after_the_older_build = gateway()
    assert after_the_older_build.resumed
    assert whole(after_the_older_build) == whole(first)
    # Its first commit writes every part again and drops the older ones: the next start reads the same.
    after_the_older_build.begin()
    assert whole(gateway()) == whole(after_the_older_build)


def test_between_edges_only_the_machines_read_change_and_at_an_edge_their_hours_and_held_windows() -> None:
    core, drivers = workshop_core()
    timing = GatewayTiming(WINDOW, 30_000, 10_000, 0.1, telemetry_spread=True, close_phase_ms=7_000)
    core = GatewayCore(core.origin, [d.info for d in drivers.values()], timing, boot_id=START)
    core.observe(START, {m: d.read(START) for m, d in drivers.items()})
    assert core.take_changed().trackers == set(drivers)  # everything at first
    one = next(iter(drivers))
    core.observe(START + 1_000, {one: drivers[one].read(START + 1_000)})
    changed = core.take_changed()
    assert (changed.trackers, changed.machine_hours, changed.held) == ({one}, set(), set())
    edge = START + WINDOW
    core.observe(edge, {m: d.read(edge) for m, d in drivers.items()})
    changed = core.take_changed()
    assert (changed.trackers, changed.machine_hours, changed.held) == (set(drivers), set(drivers), {edge})
    assert len(core.held_at(edge)) > len(drivers)  # the machines' windows and the workshop's roll-ups
    core.observe(edge + 7_000, {one: drivers[one].read(edge + 7_000)})
    changed = core.take_changed()
    assert (changed.trackers, changed.machine_hours, changed.held) == ({one}, set(), {edge})
    assert core.held_at(edge) == []
