"""The gateway's edge computation agrees with the simulator's ground truth to the millisecond."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ftel.contract.models import StateChange, StateWindow
from gateway.runner import edges_between
from gateway.tracker import MachineTracker, Origin
from simulators.driver import SimulatedDriver
from simulators.ledger import machine_ledger, plant_ledger, read_ledger, write_ledger
from simulators.machine import MachineModel
from simulators.plant import default_plant

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
