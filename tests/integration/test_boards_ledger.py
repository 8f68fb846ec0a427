"""Every board's queries against a real InfluxDB filled by a seeded simulation (through the gateway core, so with
its roll-ups); the numbers that matter are compared with the simulation's own ledger, at both resolutions a
board offers, and over a range that is not whole hours as the report reads it. The roll-ups themselves are
checked against the raw points and the ledger: per workshop, machine type, reason and machine-hour."""

from __future__ import annotations

import http.server
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dashboards import queries as q
from dashboards.build import all_dashboards
from dashboards.check import panels_of
from dashboards.errors import PublishError
from dashboards.orders_rollup import write_points
from dashboards.publish import Credentials, publish
from dashboards.report_data import collect
from dashboards.state_now import state_now_points
from ftel.contract.states import STATE_ORDER, MachineState, MachineType, state_field
from ftel.plant.layout import default_plant
from ftel.settings import Settings
from ftel.stack import free_port
from ftel.storage.query import InfluxQuery
from ftel.storage.schema import Field, Measurement, Tag
from ftel.storage.writer import RetryPolicy, make_writer
from simulators.backfill import backfill
from simulators.ledger import LedgerRow, plant_ledger
from simulators.machine import plant_models
from tests import sim_start
from tests.support import Services, unique

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000
# Three hours: a range from 17 minutes past the first to 23 minutes before the last still holds a whole hour.
HOURS = 3
WINDOW_MS = 60_000
TELEMETRY_MS = 30_000
RESOLUTIONS = tuple(q.RESOLUTION_PATTERNS)
# Per-machine readings of the overview (narrowed like the workshops) at the board's resolution.
MACHINES_AT_RESOLUTION = q.Reading("machine", q.WORKSHOP_VARIABLES)


@dataclass(frozen=True)
class Filled:
    settings: Settings
    client: InfluxQuery
    start_ms: int
    end_ms: int
    ledger: list[LedgerRow]

    def rows(self, query: q.Query, resolution: str = q.DEFAULT_RESOLUTION, **variables: tuple[str, ...]) -> list[Any]:
        binding = q.Binding(self.start_ms, self.end_ms, variables=variables, resolution=resolution)
        return self.client.rows(q.bind(query.influxql, binding))

    def between(self, query: q.Query, start_ms: int, end_ms: int, resolution: str) -> list[dict[str, Any]]:
        return self.client.rows(q.bind(query.influxql, q.Binding(start_ms, end_ms, resolution=resolution)))


@pytest.fixture(scope="module")
def filled(services: Services) -> Filled:
    """Three hours of the default plant from the pinned start (on the hour, in the past)."""
    start = sim_start.start_ms(span_ms=HOURS * HOUR_MS)
    end = start + HOURS * HOUR_MS
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
    filled = Filled(settings, InfluxQuery(settings.influx), start, end, ledger)
    _snapshot(filled, end)
    return filled


def _snapshot(filled: Filled, at_ms: int) -> None:
    """The state-now snapshot of the minute before ``at_ms``, as `ftel settle` writes it each minute beside ingest."""
    writer = make_writer(filled.settings.influx)
    write_points(writer, state_now_points(filled.client, at_ms), RetryPolicy())
    writer.close()


def _targets() -> Iterator[tuple[str, str, str]]:
    for board in all_dashboards():
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                yield board["uid"], f"variable {variable['name']}", variable["query"]
        for panel in panels_of(board):
            for target in panel.get("targets", []):
                if "query" in target:
                    yield board["uid"], f"{panel['title']} {target['refId']}", target["query"]


def test_every_panel_query_runs_against_real_influxdb_at_both_resolutions(filled: Filled) -> None:
    machine = {"machine": ("KNIT-001",)}
    checked = 0
    for uid, where, text in _targets():
        for variables in ({}, machine):
            for resolution in RESOLUTIONS:
                binding = q.Binding(filled.start_ms, filled.end_ms, variables=variables, resolution=resolution)
                filled.client.query(q.bind(text, binding))  # raises QueryError with InfluxDB's message
                checked += 1
        assert where, uid
    assert checked > 160


# --- the ledger's side ------------------------------------------------------------------------------------


def _in(rows: Iterable[LedgerRow], start_ms: int, end_ms: int) -> list[LedgerRow]:
    """The windows a range counts: those that start in it."""
    return [r for r in rows if start_ms <= r.window_start < end_ms]


def _ledger_sum(rows: Iterable[LedgerRow], key: str) -> dict[str, Counter[str]]:
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        t = totals[getattr(row, key)]
        t.update(row.state_ms)
        t["units"] += row.units
        t["defects"] += row.defects
    return totals


def _ledger_downtime(rows: Iterable[LedgerRow]) -> tuple[Counter[str], Counter[str]]:
    down: Counter[str] = Counter()
    stops: Counter[str] = Counter()
    for row in rows:
        down.update(row.down_ms_by_reason)
        stops.update(row.stops_by_reason)
    return down, stops


def _utilisation(t: Counter[str]) -> float:
    return t["RUNNING"] / (sum(t[s.value] for s in STATE_ORDER) - t["OFFLINE"])


def _oee(t: Counter[str], machine_type: MachineType) -> dict[str, float]:
    planned = sum(t[s.value] for s in STATE_ORDER) - t["OFFLINE"] - t["SETUP"] - t["MAINTENANCE"]
    rated = q.RATED_UNITS_PER_HOUR[machine_type] / q.MS_PER_HOUR
    return {
        "availability": t["RUNNING"] / planned,
        "performance": t["units"] / (t["RUNNING"] * rated),
        "quality": (t["units"] - t["defects"]) / t["units"],
        "oee": (t["units"] - t["defects"]) / (planned * rated),
    }


def _worst(rows: Iterable[LedgerRow]) -> list[int]:
    down: Counter[str] = Counter()
    for row in rows:
        down[row.machine_id] += row.state_ms["DOWN"]
    return sorted(down.values(), reverse=True)[: q.WORST_MACHINES]


# --- boards, at either resolution, over a shift of whole hours ---------------------------------------------


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_utilisation_per_workshop_and_machine_type_equals_the_ledger(filled: Filled, resolution: str) -> None:
    for tag in ("workshop", "machine_type"):
        measured = {r[tag]: r["utilisation"] for r in filled.rows(q.utilisation(tag), resolution)}
        expected = {k: _utilisation(t) for k, t in _ledger_sum(filled.ledger, tag).items()}
        assert measured == pytest.approx(expected, rel=1e-12)
        assert 0.3 < min(measured.values()) < 1.0


def test_utilisation_of_one_machine_equals_the_ledger(filled: Filled) -> None:
    measured = filled.rows(q.utilisation(reading=q.ONE_MACHINE), machine=("KNIT-003",))[0]["utilisation"]
    expected = _utilisation(
        _ledger_sum([r for r in filled.ledger if r.machine_id == "KNIT-003"], "machine_id")["KNIT-003"]
    )
    assert measured == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_downtime_by_reason_equals_the_ledger(filled: Filled, resolution: str) -> None:
    down, stops = _ledger_downtime(filled.ledger)
    measured = filled.rows(q.downtime_by_reason(), resolution)
    assert {r["reason"]: r["minutes"] * q.MS_PER_MINUTE for r in measured} == pytest.approx(down, rel=1e-12)
    assert {r["reason"]: r["stops"] for r in measured} == {k: v for k, v in stops.items() if k in down}
    assert len(measured) >= 5


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_worst_machines_are_the_ledgers_top_ten(filled: Filled, resolution: str) -> None:
    down: Counter[str] = Counter()
    for row in filled.ledger:
        down[row.machine_id] += row.state_ms["DOWN"]
    measured = filled.rows(q.worst_machines(reading=MACHINES_AT_RESOLUTION), resolution)
    assert len(measured) == q.WORST_MACHINES
    assert sorted((r["down_ms"] for r in measured), reverse=True) == _worst(filled.ledger)
    assert all(down[r["machine_id"]] == r["down_ms"] for r in measured)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_repeated_faults_are_the_ledgers(filled: Filled, resolution: str) -> None:
    stops: Counter[tuple[str, str]] = Counter()
    for row in filled.ledger:
        for reason, n in row.stops_by_reason.items():
            stops[(row.machine_id, reason)] += n
    expected = {k: n for k, n in stops.items() if n >= q.REPEATED_FAULT_STOPS}
    measured = {(r["machine_id"], r["reason"]): r["stops"] for r in filled.rows(q.repeated_faults(), resolution)}
    assert measured == expected


def test_machines_by_state_now_equal_the_simulated_states_at_the_range_end(filled: Filled) -> None:
    expected: dict[tuple[str, MachineState], int] = defaultdict(int)
    for workshop, model in plant_models(default_plant(), start_ms=filled.start_ms):
        state = next(s.state for s in model.segments() if s.start_ms <= filled.end_ms - 1 < s.end_ms)
        expected[(workshop, state)] += 1
    for query, variables in (
        (q.machines_in_state, q.WORKSHOP_VARIABLES),
        (q.machines_in_state_from_points, q.MACHINE_VARIABLES),
        (q.machines_in_state_from_points, q.WORKSHOP_VARIABLES),
    ):
        measured = {
            (r["workshop"], state): r["machines"]
            for state in STATE_ORDER
            for r in filled.rows(query(state, variables))
            if r["machines"]
        }
        assert measured == dict(expected)
    down = filled.rows(q.down_now())
    assert len(down) == sum(n for (_, s), n in expected.items() if s is MachineState.DOWN)
    assert all(r["reason"] for r in down)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_availability_and_oee_per_machine_type_equal_the_ledger(filled: Filled, resolution: str) -> None:
    totals = _ledger_sum(filled.ledger, "machine_type")
    for machine_type in MachineType:
        expected = _oee(totals[machine_type.value], machine_type)
        row = filled.rows(q.oee(machine_type), resolution)[0]
        assert {k: row[k] for k in expected} == pytest.approx(expected, rel=1e-9), machine_type
        assert row["oee"] == pytest.approx(row["availability"] * row["performance"] * row["quality"], rel=1e-9)


# --- the roll-ups against the raw points and the ledger ----------------------------------------------------

STATE_FIELDS = q.KIND_FIELDS["state"]
LEDGER_NAMES = {**{state_field(s): s.value for s in STATE_ORDER}, Field.UNITS: "units", Field.DEFECTS: "defects"}


def _sums(filled: Filled, measurement: str, fields: Iterable[str], by: str, where: str = "") -> dict[Any, Counter[str]]:
    """Sums of ``fields`` over the filled range per ``by`` (tags, or ``time(1h)`` and tags), keyed by the row's
    tag values (and time)."""
    fields = tuple(fields)
    columns = ", ".join(f'sum("{f}") AS "{f}"' for f in fields)
    rows = filled.client.rows(
        f'SELECT {columns} FROM "{measurement}" WHERE time >= {filled.start_ms}ms AND time < {filled.end_ms}ms'
        f"{where} GROUP BY {by}"
    )
    keys = [k.strip().strip('"') for k in by.split(",") if not k.strip().startswith("time(")]
    timed = "time(" in by
    result: dict[Any, Counter[str]] = {}
    for row in rows:
        if all(row[f] is None for f in fields):
            continue  # an empty hour bucket
        key = tuple(row[k] for k in keys) + ((row["time"],) if timed else ())
        result[key] = Counter({f: int(row[f]) for f in fields})
    return result


def _at(resolution: str) -> str:
    return f" AND \"{Tag.RESOLUTION}\" = '{resolution}'"


@pytest.mark.parametrize("tag", [Tag.WORKSHOP, Tag.MACHINE_TYPE])
def test_workshop_rollups_equal_the_raw_windows_and_the_ledger(filled: Filled, tag: str) -> None:
    raw = _sums(filled, Measurement.STATE_TIME, STATE_FIELDS, f'"{tag}"')
    ledger = {
        (k,): Counter({f: t[LEDGER_NAMES[f]] for f in STATE_FIELDS if f in LEDGER_NAMES})
        for k, t in _ledger_sum(filled.ledger, tag).items()
    }
    assert {k: Counter({f: v[f] for f in LEDGER_NAMES}) for k, v in raw.items()} == ledger
    for resolution in RESOLUTIONS:
        assert _sums(filled, Measurement.ROLLUP_STATE_TIME, STATE_FIELDS, f'"{tag}"', _at(resolution)) == raw


def test_workshop_downtime_rollups_equal_the_raw_windows_and_the_ledger_per_reason(filled: Filled) -> None:
    fields = (Field.DOWN_MS, Field.STOPS)
    by = f'"{Tag.WORKSHOP}", "{Tag.MACHINE_TYPE}", "{Tag.REASON}"'
    raw = _sums(filled, Measurement.DOWNTIME, fields, by)
    down, stops = _ledger_downtime(filled.ledger)
    per_reason: dict[str, Counter[str]] = defaultdict(Counter)
    for (_, _, reason), sums in raw.items():
        per_reason[reason].update(sums)
    assert {r: c[Field.DOWN_MS] for r, c in per_reason.items() if c[Field.DOWN_MS]} == +down
    assert {r: c[Field.STOPS] for r, c in per_reason.items() if c[Field.STOPS]} == +stops
    for resolution in RESOLUTIONS:
        assert _sums(filled, Measurement.ROLLUP_DOWNTIME, fields, by, _at(resolution)) == raw


def test_machine_hours_equal_the_raw_windows_and_the_ledger_per_machine_and_hour(filled: Filled) -> None:
    by = f'time(1h), "{Tag.MACHINE_ID}"'
    raw = _sums(filled, Measurement.STATE_TIME, STATE_FIELDS, by)
    assert _sums(filled, Measurement.MACHINE_HOURS, STATE_FIELDS, by, _at(q.HOUR)) == raw
    ledger: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
    for row in filled.ledger:
        t = ledger[(row.machine_id, row.window_start - row.window_start % HOUR_MS)]
        t.update({f: row.state_ms[name] for f, name in LEDGER_NAMES.items() if name in row.state_ms})
        t[Field.UNITS] += row.units
        t[Field.DEFECTS] += row.defects
    assert {k: Counter({f: v[f] for f in LEDGER_NAMES}) for k, v in raw.items()} == ledger
    assert len(ledger) == HOURS * 28

    by_reason = f'time(1h), "{Tag.MACHINE_ID}", "{Tag.REASON}"'
    fields = (Field.DOWN_MS, Field.STOPS)
    raw_down = _sums(filled, Measurement.DOWNTIME, fields, by_reason)
    assert _sums(filled, Measurement.MACHINE_HOURS_DOWNTIME, fields, by_reason, _at(q.HOUR)) == raw_down
    ledger_down: Counter[tuple[str, str, int]] = Counter()
    for row in filled.ledger:
        for reason, ms in row.down_ms_by_reason.items():
            ledger_down[(row.machine_id, reason, row.window_start - row.window_start % HOUR_MS)] += ms
    assert {k: c[Field.DOWN_MS] for k, c in raw_down.items() if c[Field.DOWN_MS]} == +ledger_down


# --- ranges that are not whole hours -----------------------------------------------------------------------


def test_the_report_reads_a_range_of_part_hours_exactly(filled: Filled) -> None:
    """17 minutes into the first hour to 23 minutes before the end: 1m roll-ups and the machines' own windows at
    the edges, 1h roll-ups and machine hours between; every figure equals the ledger's windows in the range."""
    start, end = filled.start_ms + 17 * WINDOW_MS, filled.end_ms - 23 * WINDOW_MS
    assert [s.resolution for s in q.range_slices(start, end)] == [q.MINUTE, q.HOUR, q.MINUTE]
    _snapshot(filled, end)  # settled that minute, as `ftel settle` does every minute
    data = collect(filled.client, q.Binding(start, end))
    rows = _in(filled.ledger, start, end)
    for tag, measured in (("workshop", data.utilisation_by_workshop), ("machine_type", data.utilisation_by_type)):
        assert measured == pytest.approx({k: _utilisation(t) for k, t in _ledger_sum(rows, tag).items()}, rel=1e-12)
    down, stops = _ledger_downtime(rows)
    assert {d.reason: d.minutes * q.MS_PER_MINUTE for d in data.downtime} == pytest.approx(down, rel=1e-12)
    assert {d.reason: d.stops for d in data.downtime} == {k: v for k, v in stops.items() if k in down}
    assert [w.down_ms for w in data.worst] == _worst(rows)
    expected_now: dict[str, Counter[MachineState]] = defaultdict(Counter)
    for workshop, model in plant_models(default_plant(), start_ms=filled.start_ms):
        expected_now[workshop][next(s.state for s in model.segments() if s.start_ms <= end - 1 < s.end_ms)] += 1
    assert {w: +Counter(c) for w, c in data.machines_by_state.items()} == expected_now
    totals = _ledger_sum(rows, "machine_type")
    for machine_type, measured_oee in data.oee.items():
        expected = _oee(totals[machine_type.value], machine_type)
        got = {k: getattr(measured_oee, k) for k in expected}
        assert got == pytest.approx(expected, rel=1e-9), machine_type


@pytest.mark.parametrize(("start_min", "end_min"), [(17, 180), (0, 157), (5, 50), (60, 120)])
def test_a_board_at_one_hour_counts_the_hours_that_start_in_its_range(
    filled: Filled, start_min: int, end_min: int
) -> None:
    start, end = filled.start_ms + start_min * WINDOW_MS, filled.start_ms + end_min * WINDOW_MS
    hours = [h for h in range(filled.start_ms, filled.end_ms, HOUR_MS) if start <= h < end]
    expected_1h = _ledger_sum(
        [r for r in filled.ledger if r.window_start - r.window_start % HOUR_MS in hours], "workshop"
    )
    expected_1m = _ledger_sum(_in(filled.ledger, start, end), "workshop")
    for resolution, expected in ((q.HOUR, expected_1h), (q.MINUTE, expected_1m)):
        measured = {
            r["workshop"]: r["utilisation"] for r in filled.between(q.utilisation("workshop"), start, end, resolution)
        }
        assert measured == pytest.approx({k: _utilisation(t) for k, t in expected.items()}, rel=1e-12), resolution


# --- publishing -------------------------------------------------------------------------------------------


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
