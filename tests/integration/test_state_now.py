"""The state-now snapshot (dashboards/state_now.py) on a real InfluxDB equals each machine's last raw point, read
the plain way (``SELECT last(state_code) … GROUP BY machine_id``): after a backfilled hour, and again after a
machine's state change and a vanished gateway's OFFLINE written as ingest writes them; the boards' and the
report's "now" counts read the snapshot."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from dashboards import queries as q
from dashboards.orders_rollup import write_points
from dashboards.report_data import machines_by_state
from dashboards.state_now import state_now_points
from ftel.contract.models import GatewayStatus, StateChange
from ftel.contract.states import DOWN_REASONS, STATE_ORDER, MachineState, MachineType
from ftel.plant.layout import Plant, default_plant
from ftel.storage.lineproto import encode_batch
from ftel.storage.points import death_points, to_points
from ftel.storage.query import InfluxQuery
from ftel.storage.writer import LineWriter, RetryPolicy, make_writer, write_with_retry
from simulators.backfill import backfill
from tests import sim_start
from tests.support import Services, unique

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000
MINUTE_MS = 60_000

Counts = dict[tuple[str, MachineState], int]


@dataclass(frozen=True)
class Filled:
    plant: Plant
    client: InfluxQuery
    writer: LineWriter
    end_ms: int


@pytest.fixture(scope="module")
def filled(services: Services) -> Filled:
    """An hour of the default plant, backfilled through the gateway core as the live pipeline stores it."""
    start = sim_start.start_ms(span_ms=2 * HOUR_MS)
    plant = default_plant()
    settings = services.admin(unique("state_now")).influx
    backfill(plant, settings, start_ms=start, end_ms=start + HOUR_MS, window_ms=MINUTE_MS, telemetry_interval_ms=30_000)
    return Filled(plant, InfluxQuery(settings), make_writer(settings), start + HOUR_MS)


def raw_counts(filled: Filled, at_ms: int) -> Counts:
    """Machines per (workshop, state) from each machine's last raw machine_state point before ``at_ms`` (a range
    ending at ``at_ms`` is half-open)."""
    rows = filled.client.rows(
        'SELECT last("state_code") AS "state_code" FROM "machine_state" '
        f'WHERE time < {at_ms}ms GROUP BY "workshop", "machine_id"'
    )
    return dict(Counter((r["workshop"], STATE_ORDER[r["state_code"]]) for r in rows))


def board_counts(filled: Filled, at_ms: int) -> Counts:
    """What the overview's "Machines by state now" shows with the range ending at ``at_ms``."""
    binding = q.Binding(at_ms - HOUR_MS, at_ms)
    return {
        (r["workshop"], state): r["machines"]
        for state in STATE_ORDER
        for r in filled.client.rows(q.bind(q.machines_in_state(state).influxql, binding))
        if r["machines"]
    }


def report_counts(filled: Filled, at_ms: int) -> Counts:
    by_workshop = machines_by_state(filled.client, q.Binding(at_ms - HOUR_MS, at_ms))
    return {(w, s): n for w, counts in by_workshop.items() for s, n in counts.items() if n}


def settle_now(filled: Filled, at_ms: int) -> int:
    return write_points(filled.writer, state_now_points(filled.client, at_ms), RetryPolicy())


def write(filled: Filled, *messages: StateChange | GatewayStatus, death_at_ms: int | None = None) -> None:
    """As ingest writes them: a state change's points, a vanished gateway's death from ``death_at_ms``."""
    points = []
    for message in messages:
        if isinstance(message, GatewayStatus):
            assert death_at_ms is not None
            points += death_points(message, death_at_ms)
        else:
            points += to_points(message)
    write_with_retry(filled.writer, encode_batch(points), RetryPolicy())


def test_the_snapshot_equals_the_raw_last_points_after_a_change_and_an_offline(filled: Filled) -> None:
    end = filled.end_ms
    assert settle_now(filled, end) == len({(w.id, m.type) for w in filled.plant.workshops for m in w.machines})
    before = raw_counts(filled, end)
    assert sum(before.values()) == sum(len(w.machines) for w in filled.plant.workshops)
    assert board_counts(filled, end) == before
    assert report_counts(filled, end) == before

    # A machine of the first workshop goes DOWN; the second workshop's gateway vanishes: its machines OFFLINE.
    changed_in, vanished = filled.plant.workshops[0], filled.plant.workshops[1]
    machine = next(m for m in changed_in.machines if m.type is MachineType.CARDING)
    was = next(s for s in STATE_ORDER if s is not MachineState.DOWN)
    down = StateChange(
        site=filled.plant.site,
        workshop=changed_in.id,
        gateway_id=changed_in.gateway_id,
        seq=1_000_000,
        ts=end + 20_000,
        machine_type=machine.type,
        machine_id=machine.id,
        state=MachineState.DOWN,
        reason=DOWN_REASONS[machine.type][0],
        prev_state=was,
        prev_reason=None,
        prev_duration_ms=1_000,
    )
    death = GatewayStatus(
        site=filled.plant.site,
        workshop=vanished.id,
        gateway_id=vanished.gateway_id,
        seq=0,
        ts=end,
        online=False,
        boot_id=end - HOUR_MS,
        machines={m.id: m.type for m in vanished.machines},
        will=True,
    )
    write(filled, down, death, death_at_ms=end + 40_000)
    later = end + MINUTE_MS
    settle_now(filled, later)
    after = raw_counts(filled, later)
    assert after != before
    assert after[(changed_in.id, MachineState.DOWN)] == before.get((changed_in.id, MachineState.DOWN), 0) + (
        0 if raw_state_of(filled, machine.id, end) is MachineState.DOWN else 1
    )
    assert {s: n for (w, s), n in after.items() if w == vanished.id} == {MachineState.OFFLINE: len(vanished.machines)}
    assert board_counts(filled, later) == after
    assert report_counts(filled, later) == after
    # Between two snapshots, "now" is the last one: at most a minute old.
    assert board_counts(filled, later - 1) == before


def raw_state_of(filled: Filled, machine_id: str, at_ms: int) -> MachineState:
    rows = filled.client.rows(
        f'SELECT last("state_code") AS "state_code" FROM "machine_state" WHERE "machine_id" = \'{machine_id}\' '
        f"AND time < {at_ms}ms"
    )
    return STATE_ORDER[rows[0]["state_code"]]


def test_a_selection_of_machines_is_counted_from_their_own_points(filled: Filled) -> None:
    machines = tuple(m.id for m in filled.plant.workshops[0].machines[:3])
    binding = q.Binding(filled.end_ms - HOUR_MS, filled.end_ms, variables={q.MACHINE: machines})
    counted = machines_by_state(filled.client, binding)
    assert sum(sum(c.values()) for c in counted.values()) == len(machines)
