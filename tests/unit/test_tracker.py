"""The gateway's edge computation agrees with the simulator's ground truth to the millisecond."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ftel.contract.models import StateChange, StateWindow, Telemetry
from ftel.contract.states import MachineState
from ftel.plant.layout import default_plant
from gateway.driver import Reading
from gateway.runner import edges_between
from gateway.tracker import MachineTracker, Origin
from simulators.driver import SimulatedDriver
from simulators.ledger import machine_ledger, plant_ledger, read_ledger, write_ledger
from simulators.machine import MachineModel

WINDOW = 60_000
START = 1_795_000_000_000 - 1_795_000_000_000 % WINDOW


def run_tracker(machine_index: int, poll_ms: int, hours: int = 2) -> tuple[list[StateWindow], list[StateChange]]:
    plant = default_plant()
    workshop = plant.workshops[machine_index % 2]
    spec = workshop.machines[machine_index % len(workshop.machines)]
    driver = SimulatedDriver(MachineModel(spec, plant_seed=plant.seed, start_ms=START))
    seq = itertools.count(1)
    tracker = MachineTracker(
        Origin(plant.site, workshop.id, workshop.gateway_id),
        driver.info,
        window_ms=WINDOW,
        telemetry_interval_ms=30_000,
        next_seq=lambda: next(seq),
    )
    end = START + hours * 3_600_000
    times = sorted({START, *edges_between(START, end, WINDOW), *range(START, end + 1, poll_ms)})
    out = [m for at in times for r in driver.read(at) for m in tracker.observe(r)]
    return [m for m in out if isinstance(m, StateWindow)], [m for m in out if isinstance(m, StateChange)]


@settings(max_examples=12, deadline=None)
@given(machine=st.integers(0, 27), poll_ms=st.integers(1_000, 200_000))
def test_windows_equal_the_ledger_for_any_poll_rhythm(machine: int, poll_ms: int) -> None:
    windows, _ = run_tracker(machine, poll_ms)
    plant = default_plant()
    workshop = plant.workshops[machine % 2]
    spec = workshop.machines[machine % len(workshop.machines)]
    ledger = machine_ledger(
        MachineModel(spec, plant_seed=plant.seed, start_ms=START),
        site=plant.site,
        workshop=workshop.id,
        end_ms=START + 7_200_000,
        window_ms=WINDOW,
    )
    expected = [
        (r.window_start, r.state_ms, r.down_ms_by_reason, r.stops_by_reason, r.units, r.defects) for r in ledger
    ]
    got = [
        (
            w.window_start,
            {s.value: ms for s, ms in w.state_ms.items()},
            w.down_ms_by_reason,
            w.stops_by_reason,
            w.units,
            w.defects,
        )
        for w in windows
    ]
    assert got == expected


def test_each_event_states_the_exact_duration_of_the_state_before() -> None:
    _, events = run_tracker(3, 7_000)
    # The first state was first seen at the start: the first event states how long it lasted from there.
    assert events[0].prev_duration_ms == events[0].ts - START
    for before, after in itertools.pairwise(events):
        assert after.prev_state == before.state
        assert after.prev_duration_ms == after.ts - before.ts > 0
    assert [e.seq for e in events] == sorted(e.seq for e in events)


def test_the_ledger_file_reads_back_as_written(tmp_path: Path) -> None:
    rows = list(plant_ledger(default_plant(), start_ms=START, end_ms=START + 600_000, window_ms=WINDOW))
    path = tmp_path / "ledger.jsonl"
    assert write_ledger(rows, path) == len(rows) == 28 * 10
    assert read_ledger(path) == rows


def _reading(at_s: int, state: MachineState, reason: str | None = None, units: int = 0, defects: int = 0) -> Reading:
    return Reading(START + at_s * 1000, state, reason, units, defects, 1.0, 30.0, 0)


def _tracker(telemetry_phase_ms: int = 0) -> MachineTracker:
    plant = default_plant()
    spec = plant.workshops[0].machines[0]
    seq = itertools.count(1)
    driver = SimulatedDriver(MachineModel(spec, plant_seed=plant.seed, start_ms=START))
    origin = Origin(plant.site, plant.workshops[0].id, plant.workshops[0].gateway_id)
    return MachineTracker(
        origin,
        driver.info,
        window_ms=WINDOW,
        telemetry_interval_ms=30_000,
        next_seq=lambda: next(seq),
        telemetry_phase_ms=telemetry_phase_ms,
    )


@given(st.integers(0, 29_999), st.integers(0, 120_000))
def test_a_machine_s_first_sample_is_at_its_own_phase_not_at_first_sight(phase_ms: int, first_ms: int) -> None:
    tracker = _tracker(phase_ms)
    samples = [
        m.ts
        for at_ms in range(first_ms, first_ms + 61_000, 1_000)
        for m in tracker.observe(Reading(START + at_ms, MachineState.RUNNING, None, 0, 0, 1.0, 30.0, 0))
        if isinstance(m, Telemetry)
    ]
    # Read every second from first sight: a sample at the first reading at or after each of its moments (START is
    # on an interval edge), the first moment being at or after first sight.
    reads = range(first_ms, first_ms + 61_000, 1_000)
    moments = [m for m in range(phase_ms, first_ms + 61_000, 30_000) if m >= first_ms]
    expected = sorted({START + next(t for t in reads if t >= m) for m in moments if m <= reads[-1]})
    assert samples == expected
    assert samples[0] - START - first_ms < 30_000 + 1_000


def test_counters_that_start_from_zero_again_carry_on_from_the_last_total() -> None:
    tracker = _tracker()
    tracker.observe(_reading(0, MachineState.RUNNING, units=100, defects=5))
    tracker.observe(_reading(30, MachineState.RUNNING, units=104, defects=5))
    tracker.observe(_reading(40, MachineState.RUNNING, units=1, defects=0))  # the controller restarted
    (window,) = [
        m for m in tracker.observe(_reading(60, MachineState.RUNNING, units=3, defects=1)) if isinstance(m, StateWindow)
    ]
    assert (window.units, window.defects) == (4 + 2, 1)  # 4 before the restart, 2 after; nothing negative


def test_a_machine_back_from_an_offline_gap_in_the_same_stop_is_not_stopped_twice() -> None:
    tracker = _tracker()
    out = []
    for reading in (
        _reading(0, MachineState.RUNNING),
        _reading(10, MachineState.DOWN, "fibre_choke"),
        _reading(20, MachineState.OFFLINE),
        _reading(30, MachineState.DOWN, "fibre_choke"),  # the same stop, seen again
        _reading(40, MachineState.RUNNING),
        _reading(50, MachineState.DOWN, "fibre_choke"),  # a new one
        _reading(60, MachineState.RUNNING),
    ):
        out.extend(tracker.observe(reading))
    (window,) = [m for m in out if isinstance(m, StateWindow)]
    assert window.stops_by_reason == {"fibre_choke": 2}
    assert window.state_ms[MachineState.OFFLINE] == 10_000
