"""The load test's plan: one plant clock for every process, and the gateways' workshops split into processes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadtest.errors import LoadTestError
from loadtest.plan import (
    DEFAULT_LEAD_MS,
    MACHINES_PER_GATEWAY_PROCESS,
    auto_gateway_processes,
    clock_plan,
    share_workshops,
    start_lead_ms,
    whole_windows,
)

WINDOW_MS = 60_000
NOW_MS = 1_800_000_123_456


def test_at_real_time_plant_time_is_wall_time_from_the_next_window_edge() -> None:
    clock = clock_plan(now_ms=NOW_MS, duration_ms=5 * WINDOW_MS, speedup=1, window_ms=WINDOW_MS, lead_ms=8_000)
    assert clock.real_time
    assert clock.start_ms == clock.anchor_ms
    assert clock.start_ms % WINDOW_MS == 0
    assert NOW_MS + 8_000 <= clock.start_ms < NOW_MS + 8_000 + WINDOW_MS
    assert clock.duration_ms == 5 * WINDOW_MS
    assert clock.plant_of(clock.start_ms + 12_345) == clock.start_ms + 12_345


@given(st.floats(1.5, 1000), st.integers(1, 600))
def test_faster_than_real_time_the_plant_starts_in_the_past_and_never_overtakes_the_wall(
    speedup: float, minutes: int
) -> None:
    clock = clock_plan(now_ms=NOW_MS, duration_ms=minutes * WINDOW_MS, speedup=speedup, window_ms=WINDOW_MS)
    assert clock.start_ms % WINDOW_MS == 0
    assert clock.start_ms <= clock.anchor_ms  # at the anchor the plant is behind the wall…
    assert clock.end_ms <= clock.wall_end_ms  # …and still at its end: the clock is never held back
    assert clock.anchor_ms > NOW_MS  # processes get a lead to start
    assert abs(clock.wall_of(clock.plant_of(clock.anchor_ms + 5_000)) - (clock.anchor_ms + 5_000)) <= 1


def test_durations_become_whole_windows_and_nonsense_is_refused() -> None:
    assert whole_windows(1, WINDOW_MS) == WINDOW_MS
    assert whole_windows(90_000, WINDOW_MS) == 2 * WINDOW_MS
    assert whole_windows(120_000, WINDOW_MS) == 2 * WINDOW_MS
    with pytest.raises(LoadTestError):
        whole_windows(0, WINDOW_MS)
    with pytest.raises(LoadTestError, match="speedup"):
        clock_plan(now_ms=NOW_MS, duration_ms=WINDOW_MS, speedup=0.5, window_ms=WINDOW_MS)


def test_gateway_processes_grow_with_the_plant_but_never_past_its_workshops() -> None:
    assert auto_gateway_processes(200, 4) == 1
    assert auto_gateway_processes(MACHINES_PER_GATEWAY_PROCESS + 1, 100) == 2
    assert auto_gateway_processes(60_000, 120) == 60_000 // MACHINES_PER_GATEWAY_PROCESS
    assert auto_gateway_processes(60_000, 3) == 3


@given(st.lists(st.integers(1, 500), min_size=1, max_size=150), st.integers(1, 20))
def test_every_workshop_is_in_exactly_one_share_and_shares_are_balanced(sizes: list[int], processes: int) -> None:
    workshops = [(f"ws{i:03d}", n) for i, n in enumerate(sizes)]
    shares = share_workshops(workshops, processes)
    assert len(shares) == min(processes, len(workshops))
    placed = [w for s in shares for w in s.workshops]
    assert sorted(placed) == sorted(w for w, _ in workshops)
    assert all(s.workshops for s in shares)
    assert all(list(s.workshops) == sorted(s.workshops) for s in shares)  # the plant's order within a share
    assert sum(s.machines for s in shares) == sum(sizes)
    # Largest first onto the lightest: no share exceeds another by more than the largest workshop.
    assert max(s.machines for s in shares) - min(s.machines for s in shares) <= max(sizes)
    assert len({s.name for s in shares}) == len(shares)


def test_a_county_splits_evenly() -> None:
    shares = share_workshops([(f"ws{i:03d}", 500) for i in range(120)], 6)
    assert [s.machines for s in shares] == [10_000] * 6


def test_the_gateways_start_early_enough_for_their_own_start_on_this_machine_s_cores() -> None:
    # The fixed lead for a small plant; a county's start shared by the cores on top of it.
    assert start_lead_ms(1_000, 2) == DEFAULT_LEAD_MS + 500
    assert start_lead_ms(60_000, 2) == DEFAULT_LEAD_MS + 30_000
    assert start_lead_ms(60_000, 4) < start_lead_ms(60_000, 2)
    assert start_lead_ms(60_000, 0) == start_lead_ms(60_000, 1)
