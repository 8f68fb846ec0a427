"""The alert engine over whole simulated plant histories, without services (the gateway core as the runner
drives it, tests/plant_replay.py): the injected-fault story raises each expected alert exactly once and on time
at any start (every start is another plant history around the injected faults), in any tick rhythm of the
gateways and any interleaving of their streams; and a plant left to itself raises none."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alerts.engine import Engine
from alerts.lifecycle import AlertRecord
from alerts.rules import load_config
from ftel.contract.models import Message
from ftel.plant.layout import default_plant
from gateway.core import GatewayTiming
from tests import sim_start
from tests.fault_story import (
    END_S,
    HEARTBEAT_MS,
    KILL_AT_S,
    KILLED_WORKSHOP,
    RESTART_AT_S,
    all_resolved,
    check_story,
    fault_plant,
)
from tests.plant_replay import Arrival, received, run_gateway

TIMING = GatewayTiming(
    window_ms=60_000, telemetry_interval_ms=30_000, heartbeat_interval_ms=HEARTBEAT_MS, tick_s=0, telemetry_spread=False
)
MINUTE_MS = 60_000
# Starts anywhere in 2020-2035, on a whole minute (as the pinned starts of the integration tests are).
STARTS = st.integers(1_577_836_800_000 // MINUTE_MS, 2_082_758_400_000 // MINUTE_MS).map(lambda m: m * MINUTE_MS)
# A tick covers at most a heartbeat interval of simulated time (tests/sim_clock.py paces the real gateways so).
STEPS = st.lists(st.integers(200, HEARTBEAT_MS), min_size=1, max_size=4)
# Gateways paced together stay within this much of each other (tests/sim_clock.py).
LAGS = st.integers(0, 2 * HEARTBEAT_MS)
# The start that failed on 2026-11-23: a natural fabric drop-off under the injected yarn-break burst.
FAILED_START = 1_795_402_800_000
# The start that failed on 2029-09-04: a natural unknown_fault stop of a carding machine longer than 20 minutes.
UNKNOWN_FAULT_START = 1_883_209_860_000


def fault_story(start_ms: int, steps: list[list[int]], lags: list[int]) -> list[AlertRecord]:
    engine = Engine(load_config())
    return [record for message in fault_story_messages(start_ms, steps, lags) for record in engine.observe(message)]


def fault_story_messages(start_ms: int, steps: list[list[int]], lags: list[int]) -> list[Message]:
    """The story's messages as the alert worker receives them: each gateway ticking by its ``steps`` and
    lagging by its ``lags`` (yarn, knit, the spare until it is killed, the spare restarted)."""
    plant = fault_plant("s")
    end = start_ms + END_S * 1000
    kill, restart = start_ms + KILL_AT_S * 1000, start_ms + RESTART_AT_S * 1000

    def boot(workshop: str, index: int, first_ms: int, end_ms: int, *, clean: bool = True) -> list[Arrival]:
        run = run_gateway(
            plant,
            workshop,
            start_ms=start_ms,
            first_read_ms=first_ms,
            end_ms=end_ms,
            steps_ms=steps[index],
            timing=TIMING,
            boot_id=first_ms + index,
            clean_end=clean,
        )
        arrivals = run.arrivals(lag_ms=lags[index])
        if not clean:  # killed: the broker publishes its will as soon as the connection is gone
            arrivals.append((max(arrivals[-1][0], end_ms), run.will))
        return arrivals

    streams = [
        boot("yarn", 0, start_ms, end),
        boot("knit", 1, start_ms, end),
        boot(KILLED_WORKSHOP, 2, start_ms, kill, clean=False),
        boot(KILLED_WORKSHOP, 3, restart, end),
    ]
    return received(*streams)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start_ms=STARTS, steps=st.lists(STEPS, min_size=4, max_size=4), lags=st.lists(LAGS, min_size=4, max_size=4))
@example(start_ms=FAILED_START, steps=[[1_500]] * 4, lags=[0] * 4)
@example(start_ms=UNKNOWN_FAULT_START, steps=[[200]] * 4, lags=[0] * 4)
def test_each_injected_fault_is_one_alert_on_time_at_any_start(
    start_ms: int, steps: list[list[int]], lags: list[int]
) -> None:
    records = fault_story(start_ms, steps, lags)
    assert all_resolved(records), f"unresolved at simulation start {start_ms}: {records}"
    check_story(records, start_ms)


@pytest.mark.parametrize("hour", range(24))
def test_each_injected_fault_is_one_alert_at_every_pinned_start_hour(hour: int) -> None:
    # The starts FTEL_TEST_START_HOUR gives the integration tests (tests/sim_start.py).
    start_ms = sim_start.DAY_MS + hour * sim_start.HOUR_MS
    records = fault_story(start_ms, [[1_500], [2_500], [1_000], [3_000]], [0, HEARTBEAT_MS, 0, 2 * HEARTBEAT_MS])
    assert all_resolved(records), f"unresolved at simulation start {start_ms}: {records}"
    check_story(records, start_ms)


def test_a_shift_of_the_default_plant_left_to_itself_raises_no_alert() -> None:
    # By construction (tests/unit/test_fault_free.py); here the whole way through the gateway core and the engine,
    # with the second workshop's gateway lagging, at the start that once raised a machine-down alert.
    plant, start_ms = default_plant("s"), FAILED_START
    end = start_ms + 8 * 3_600_000
    streams = [
        run_gateway(
            plant,
            w.id,
            start_ms=start_ms,
            first_read_ms=start_ms,
            end_ms=end,
            steps_ms=[5_000, 3_000, 9_000],
            timing=TIMING,
            boot_id=start_ms,
        ).arrivals(lag_ms=i * 2 * HEARTBEAT_MS)
        for i, w in enumerate(plant.workshops)
    ]
    engine = Engine(load_config())
    assert [record for message in received(*streams) for record in engine.observe(message)] == []
