"""The test harness's own time keeping: pinned starts (tests/sim_start.py) and gateways paced together
(tests/sim_clock.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.clock import SimClock
from tests import sim_start
from tests.sim_clock import IDLE, MAX_LEAD_MS, MAX_STEP_MS, Pace, PacedClock

START = sim_start.DAY_MS
# Anchored before the start at a high speed-up: the plain simulated clock is at the wall clock, days past the
# times these tests see.
AHEAD = SimClock(START, 1000.0, START - 3_600_000)


def test_the_start_is_pinned_and_an_hour_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sim_start.ENV, raising=False)
    assert sim_start.start_ms(span_ms=3_600_000) == START + sim_start.DEFAULT_HOUR * 3_600_000
    monkeypatch.setenv(sim_start.ENV, "23")
    assert sim_start.start_ms(span_ms=3_600_000) == START + 23 * 3_600_000
    for wrong in ("24", "-1", "noon"):
        monkeypatch.setenv(sim_start.ENV, wrong)
        with pytest.raises(ValueError, match="0 to 23"):
            sim_start.start_ms(span_ms=0)


def test_a_clock_behind_catches_up_a_heartbeat_interval_at_a_time() -> None:
    clock = PacedClock(AHEAD, start_ms=START)
    assert [clock.now_ms() - START for _ in range(3)] == [MAX_STEP_MS, 2 * MAX_STEP_MS, 3 * MAX_STEP_MS]


def test_no_gateway_runs_further_ahead_of_what_subscribers_have_from_the_slowest(tmp_path: Path) -> None:
    pace = Pace.create(tmp_path / "pace", slots=2, start_ms=START)
    fast, slow = (
        PacedClock(AHEAD, pace=pace, slot=0, start_ms=START),
        PacedClock(AHEAD, pace=pace, slot=1, start_ms=START),
    )
    assert [fast.now_ms() for _ in range(5)][-1] == START + MAX_LEAD_MS
    pace.advance(0, START + MAX_LEAD_MS)  # the fast one's heartbeats arrived; nothing from the slow one yet
    assert fast.now_ms() == START + MAX_LEAD_MS
    assert slow.now_ms() == START + MAX_STEP_MS
    pace.advance(1, START + MAX_STEP_MS)
    assert fast.now_ms() == START + MAX_STEP_MS + MAX_LEAD_MS
    # An idle slot (its gateway killed, say) holds nobody back; an older heartbeat never lowers a slot.
    pace.set(1, IDLE)
    assert fast.now_ms() == START + 2 * MAX_LEAD_MS
    pace.advance(0, START)
    assert pace.get(0) == START + MAX_LEAD_MS


def test_a_held_clock_stops_there_and_the_others_wait_just_past_it(tmp_path: Path) -> None:
    pace = Pace.create(tmp_path / "pace", slots=2, start_ms=START)
    held = PacedClock(AHEAD, pace=pace, slot=0, start_ms=START, hold_at_ms=START + 25_000)
    other = PacedClock(AHEAD, pace=pace, slot=1, start_ms=START)
    for _ in range(10):
        pace.advance(0, held.now_ms())
        pace.advance(1, other.now_ms())
    assert (held.now_ms(), other.now_ms()) == (START + 25_000, START + 25_000 + MAX_LEAD_MS)


def test_a_gateway_joining_at_the_lead_can_still_reach_its_next_heartbeat(tmp_path: Path) -> None:
    # Its own slot still holds where it was parked: only the others' heartbeats bound it, or it would wait for
    # a heartbeat it cannot reach.
    pace = Pace.create(tmp_path / "pace", slots=2, start_ms=START)
    pace.advance(0, START + MAX_LEAD_MS)
    joining = PacedClock(AHEAD, pace=pace, slot=1, start_ms=START + 2 * MAX_LEAD_MS)
    assert joining.allowed_ms() == START + 2 * MAX_LEAD_MS
    pace.advance(0, START + 2 * MAX_LEAD_MS)
    assert joining.now_ms() == START + 2 * MAX_LEAD_MS + MAX_STEP_MS
