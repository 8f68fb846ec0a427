"""Every board's queries against a real InfluxDB filled by a seeded simulation; the numbers that matter are
compared with the simulation's own ledger."""

from __future__ import annotations

import http.server
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dashboards import queries as q
from dashboards.build import all_dashboards
from dashboards.check import panels_of
from dashboards.publish import Credentials, PublishError, publish
from ftel.contract.states import STATE_ORDER, MachineState, MachineType
from ftel.settings import Settings
from ftel.stack import free_port
from ftel.storage.query import InfluxQuery
from simulators.backfill import backfill
from simulators.ledger import LedgerRow, plant_ledger
from simulators.machine import plant_models
from simulators.plant import default_plant
from tests.support import Services, unique

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000
WINDOW_MS = 60_000
TELEMETRY_MS = 30_000


@dataclass(frozen=True)
class Filled:
    settings: Settings
    client: InfluxQuery
    start_ms: int
    end_ms: int
    ledger: list[LedgerRow]

    def rows(self, query: q.Query, **variables: tuple[str, ...]) -> list[dict[str, Any]]:
        return self.client.rows(q.bind(query.influxql, q.Binding(self.start_ms, self.end_ms, variables=variables)))


@pytest.fixture(scope="module")
def filled(services: Services) -> Filled:
    """Two hours of the default plant, aligned to the hour and at least three hours in the past."""
    now = int(time.time() * 1000)
    start = now - now % HOUR_MS - 4 * HOUR_MS
    end = start + 2 * HOUR_MS
    plant = default_plant()
    settings = services.admin(unique("boards"))
    backfill(
        plant,
        settings.influx,
        start_ms=start,
        end_ms=end,
        window_ms=WINDOW_MS,
        telemetry_interval_ms=TELEMETRY_MS,
    )
    ledger = list(plant_ledger(plant, start_ms=start, end_ms=end, window_ms=WINDOW_MS))
    return Filled(settings, InfluxQuery(settings.influx), start, end, ledger)


def _targets() -> Iterator[tuple[str, str, str]]:
    for board in all_dashboards():
        for variable in board["templating"]["list"]:
            yield board["uid"], f"variable {variable['name']}", variable["query"]
        for panel in panels_of(board):
            for target in panel.get("targets", []):
                if "query" in target:
                    yield board["uid"], f"{panel['title']} {target['refId']}", target["query"]


def test_every_panel_query_runs_against_real_influxdb(filled: Filled) -> None:
    machine = {"machine": ("KNIT-001",)}
    checked = 0
    for uid, where, text in _targets():
        for variables in ({}, machine):
            bound = q.bind(text, q.Binding(filled.start_ms, filled.end_ms, variables=variables))
            filled.client.query(bound)  # raises QueryError with InfluxDB's message
            checked += 1
        assert where, uid
    assert checked > 80


def _ledger_sum(rows: list[LedgerRow], key: str) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        for state, ms in row.state_ms.items():
            totals[getattr(row, key)][state] += ms
        totals[getattr(row, key)]["units"] += row.units
        totals[getattr(row, key)]["defects"] += row.defects
    return totals


def _utilisation(t: dict[str, int]) -> float:
    return t["RUNNING"] / (sum(t[s.value] for s in STATE_ORDER) - t["OFFLINE"])


def test_utilisation_per_workshop_and_machine_type_equals_the_ledger(filled: Filled) -> None:
    for tag in ("workshop", "machine_type"):
        measured = {r[tag]: r["utilisation"] for r in filled.rows(q.utilisation(tag))}
        expected = {k: _utilisation(t) for k, t in _ledger_sum(filled.ledger, tag).items()}
        assert measured == pytest.approx(expected, rel=1e-12)
        assert 0.3 < min(measured.values()) < 1.0


def test_utilisation_of_one_machine_equals_the_ledger(filled: Filled) -> None:
    measured = filled.rows(q.utilisation(), machine=("KNIT-003",))[0]["utilisation"]
    expected = _utilisation(
        _ledger_sum([r for r in filled.ledger if r.machine_id == "KNIT-003"], "machine_id")["KNIT-003"]
    )
    assert measured == pytest.approx(expected, rel=1e-12)


def test_downtime_by_reason_equals_the_ledger(filled: Filled) -> None:
    down: dict[str, int] = defaultdict(int)
    stops: dict[str, int] = defaultdict(int)
    for row in filled.ledger:
        for reason, ms in row.down_ms_by_reason.items():
            down[reason] += ms
        for reason, n in row.stops_by_reason.items():
            stops[reason] += n
    measured = filled.rows(q.downtime_by_reason())
    assert {r["reason"]: r["minutes"] * q.MS_PER_MINUTE for r in measured} == pytest.approx(down, rel=1e-12)
    assert {r["reason"]: r["stops"] for r in measured} == {k: v for k, v in stops.items() if k in down}
    assert len(measured) >= 5


def test_worst_machines_are_the_ledgers_top_ten(filled: Filled) -> None:
    down: dict[str, int] = defaultdict(int)
    for row in filled.ledger:
        down[row.machine_id] += row.state_ms["DOWN"]
    measured = filled.rows(q.worst_machines())
    assert len(measured) == q.WORST_MACHINES
    assert sorted((r["down_ms"] for r in measured), reverse=True) == sorted(down.values(), reverse=True)[:10]
    assert all(down[r["machine_id"]] == r["down_ms"] for r in measured)


def test_machines_by_state_now_equal_the_simulated_states_at_the_range_end(filled: Filled) -> None:
    expected: dict[tuple[str, MachineState], int] = defaultdict(int)
    for workshop, model in plant_models(default_plant(), start_ms=filled.start_ms):
        state = next(s.state for s in model.segments() if s.start_ms <= filled.end_ms - 1 < s.end_ms)
        expected[(workshop, state)] += 1
    measured = {
        (r["workshop"], state): r["machines"] for state in STATE_ORDER for r in filled.rows(q.machines_in_state(state))
    }
    assert measured == dict(expected)
    down = filled.rows(q.down_now())
    assert len(down) == sum(n for (_, s), n in expected.items() if s is MachineState.DOWN)
    assert all(r["reason"] for r in down)


def test_availability_and_oee_per_machine_type_equal_the_ledger(filled: Filled) -> None:
    totals = _ledger_sum(filled.ledger, "machine_type")
    for machine_type in MachineType:
        t = totals[machine_type.value]
        planned = sum(t[s.value] for s in STATE_ORDER) - t["OFFLINE"] - t["SETUP"] - t["MAINTENANCE"]
        rated = q.RATED_UNITS_PER_HOUR[machine_type] / q.MS_PER_HOUR
        expected = {
            "availability": t["RUNNING"] / planned,
            "performance": t["units"] / (t["RUNNING"] * rated),
            "quality": (t["units"] - t["defects"]) / t["units"],
            "oee": (t["units"] - t["defects"]) / (planned * rated),
        }
        row = filled.rows(q.oee(machine_type))[0]
        assert {k: row[k] for k in expected} == pytest.approx(expected, rel=1e-9), machine_type
        assert row["oee"] == pytest.approx(row["availability"] * row["performance"] * row["quality"], rel=1e-9)


def test_publish_to_a_closed_port_says_grafana_is_not_reachable(filled: Filled) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PublishError, match="Grafana is not reachable"):
        publish(filled.settings, url, Credentials(token="anything"))


class _Unauthorised(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"message":"Unauthorized"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_publish_with_bad_credentials_says_so(filled: Filled) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorised)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(PublishError, match="bad credentials"):
            publish(filled.settings, url, Credentials(user="admin", password="wrong"))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
