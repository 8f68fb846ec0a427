"""Benchmark (not a test): how fast the boards and the shift report answer over a shift of a generated plant, read
from the roll-ups (the boards as they are) and from the raw points (the boards and report before roll-ups).

For each fleet size the plant is backfilled through the gateway core (with its roll-ups, as the live pipeline
stores them) into its own database, over the last finished shift. Then, each query run --repeat times (its
time is the median):

- boards: what each board runs when it opens: its variables, then every panel target, bound as Grafana binds
  them (range = the shift, $__interval 1m, variables with All at All, any other at the first value of its
  list); at resolution 1m (the default) and 1h;
- report: the shift report's queries over the shift (whole hours), and over the shift less 17 minutes at the
  start and 23 at the end (part hours at both edges);
- now: the "now" counts at the shift's end from the settled state-now snapshot (written first, as ``ftel settle``
  writes it each minute) and, before it, from every machine's last point;
- raw: the same questions as the boards and report read them before roll-ups: every range figure from the
  machines' raw windows, Machine detail and Workshop floor opened on every machine, the report's timelines of
  every machine.

It prints p50, p95 and max over the queries of each set, their sum, the slowest queries, and whether the report
read from roll-ups equals the report read from raw points. Usage:

    python bench/boards.py [--machines 6000 60000] [--hours 8] [--telemetry-s 30] [--repeat 3] [--stack-dir DIR]
                           [--raw-up-to 10000]

--telemetry-s samples telemetry less often to make a large fleet's backfill shorter: the boards read telemetry
for one machine only, so its density barely matters to them. --stack-dir keeps the stack and the filled
databases for the next run (a database is filled once); --stop stops a kept stack.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboards import queries as q
from dashboards.build import all_dashboards
from dashboards.check import panels_of
from dashboards.orders_rollup import write_points
from dashboards.report_data import ReportData, ReportReadings, collect
from dashboards.shifts import last_shift
from dashboards.state_now import state_now_points
from ftel.contract.states import STATE_ORDER, MachineType
from ftel.security.identities import SUPERVISOR
from ftel.settings import InfluxSettings
from ftel.stack import LocalStack
from ftel.storage.query import InfluxQuery, Series
from ftel.storage.schema import Field, Measurement, Tag
from ftel.storage.writer import direct_write_policy, make_writer
from simulators.backfill import backfill
from simulators.plant import generate_plant
from tests.support import Services

console = Console(width=150)
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
WINDOW_MS = 60_000
# Raw questions over a county's shift can take minutes; the report's worst case too.
QUERY_TIMEOUT_S = 900.0
# The report over part hours: the shift less this much at its start and at its end.
PART_HOUR_EDGES_MIN = (17, 23)
SLOWEST = 6
MEASUREMENTS = frozenset(v for k, v in vars(Measurement).items() if k.isupper())

# Every range figure from the machines' own raw windows: how boards and report read before roll-ups.
RAW = q.Reading("machine", q.MACHINE_VARIABLES, (q.RAW_SLICE,))


class TimedQuery(InfluxQuery):
    """An InfluxQuery that records how long each statement took."""

    def __init__(self, settings: InfluxSettings) -> None:
        super().__init__(settings)
        self.times: list[tuple[str, float]] = []

    def query(self, influxql: str, *, epoch: str = "ms") -> list[Series]:
        began = time.perf_counter()
        try:
            return super().query(influxql, epoch=epoch)
        finally:
            self.times.append((influxql, time.perf_counter() - began))


@dataclass
class Timings:
    """Median seconds per query of one set, by the query's name."""

    name: str
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, samples: Sequence[float]) -> None:
        key, n = name, 2
        while key in self.seconds:
            key, n = f"{name} #{n}", n + 1
        self.seconds[key] = statistics.median(samples)

    def percentile(self, p: float) -> float:
        values = sorted(self.seconds.values())
        return values[min(len(values) - 1, max(0, round(p * (len(values) - 1))))]


# --- the stack and the fill --------------------------------------------------------------------------------


def open_stack(directory: Path | None) -> tuple[LocalStack, bool]:
    """A stack under ``directory`` (ports kept beside it, so a second run finds it), or a throw-away one."""
    if directory is None:
        return LocalStack.on_free_ports(Path(tempfile.mkdtemp(prefix="ftel-bench-boards-")) / "stack"), False
    ports = directory / "bench-ports.json"
    if ports.exists():
        return LocalStack(directory, **json.loads(ports.read_text())), True
    stack = LocalStack.on_free_ports(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ports.write_text(
        json.dumps(
            {"mqtt_port": stack.mqtt_port, "influx_port": stack.influx_port, "influx_rpc_port": stack.influx_rpc_port}
        )
    )
    return stack, True


@dataclass(frozen=True)
class Filled:
    database: str
    start_ms: int
    end_ms: int
    machines: int
    points: int
    fill_s: float


def fill(services: Services, machines: int, hours: int, telemetry_s: int, marker_dir: Path) -> Filled:
    """The plant backfilled into its own database over the last finished shift (once: a marker remembers it)."""
    database = f"bench_boards_{machines}m_{hours}h_t{telemetry_s}"
    marker = marker_dir / f"{database}.json"
    if marker.exists():
        kept = json.loads(marker.read_text())
        console.print(f"{database}: filled before ({kept['points']:,} points in {kept['fill_s']:.0f} s), reused")
        return Filled(**kept)
    shift = last_shift(datetime.now(UTC))
    end = shift.end_ms
    start = end - hours * HOUR_MS
    plant = generate_plant(machines)
    settings = services.admin(database)
    console.print(
        f"{database}: backfilling {machines:,} machines in {len(plant.workshops)} workshops over "
        f"{hours} h ending {shift.label}, telemetry every {telemetry_s} s"
    )
    began = time.perf_counter()
    last_print = [0.0]

    def progress(done: int, total: int) -> None:
        elapsed = time.perf_counter() - began
        if done == total or elapsed - last_print[0] >= 10:
            last_print[0] = elapsed
            eta = elapsed / done * (total - done)
            console.print(f"  {done:,}/{total:,} machines, {elapsed:.0f} s, about {eta:.0f} s to go")

    points = backfill(
        plant,
        settings.influx,
        start_ms=start,
        end_ms=end,
        window_ms=WINDOW_MS,
        telemetry_interval_ms=telemetry_s * 1000,
        on_progress=progress,
    )
    filled = Filled(database, start, end, machines, points, time.perf_counter() - began)
    console.print(f"  {points:,} points in {filled.fill_s:.0f} s ({points / filled.fill_s:,.0f} points/s)")
    marker.write_text(json.dumps(filled.__dict__))
    return filled


def snapshot(services: Services, filled: Filled) -> None:
    """The state-now snapshot at the shift's end, as ``ftel settle`` writes it each minute beside ingest."""
    settings = services.admin(filled.database).influx
    client, writer = InfluxQuery(settings), make_writer(settings)
    began = time.perf_counter()
    written = write_points(writer, state_now_points(client, filled.end_ms), direct_write_policy(settings))
    console.print(f"state-now snapshot at the shift's end: {written} points in {time.perf_counter() - began:.2f} s")
    client.close()
    writer.close()


# --- what the boards run when they open ------------------------------------------------------------------


def opening_selection(board: Mapping[str, Any], client: InfluxQuery, base: q.Binding) -> dict[str, tuple[str, ...]]:
    """Each variable as Grafana opens the board: one with All at All, any other at the first value of its
    (alphabetically sorted) list."""
    selected: dict[str, tuple[str, ...]] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query" or variable.get("includeAll"):
            continue
        binding = q.Binding(base.start_ms, base.end_ms, variables=selected)
        values = sorted(str(r["value"]) for r in client.rows(q.bind(variable["query"], binding)))
        selected[variable["name"]] = (values[0],) if values else ()
    return selected


def board_queries(client: InfluxQuery, shift: q.Binding) -> Iterator[tuple[str, str, q.Binding]]:
    """(name, statement, binding) of everything each board runs when it opens."""
    for board in all_dashboards():
        selected = opening_selection(board, client, shift)
        binding = q.Binding(shift.start_ms, shift.end_ms, shift.interval_ms, selected, shift.resolution)
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                yield f"{board['uid']} variable {variable['name']}", variable["query"], binding
        for panel in panels_of(board):
            for target in panel.get("targets", []):
                if "query" in target:
                    yield f"{board['uid']} {panel['title']} {target['refId']}", target["query"], binding


def raw_board_queries(shift: q.Binding) -> Iterator[tuple[str, str, q.Binding]]:
    """The same boards as they read before roll-ups: range figures from raw windows, every variable at All (the
    machine detail and the floor opened on every machine)."""
    overview = [
        *(q.machines_in_state_from_points(s) for s in STATE_ORDER),
        q.utilisation(reading=RAW),
        q.utilisation(reading=RAW),  # "today": the shift here
        q.utilisation(Tag.WORKSHOP, reading=RAW),
        q.utilisation(Tag.MACHINE_TYPE, reading=RAW),
        q.utilisation_trend(Tag.WORKSHOP, RAW),
        q.downtime_by_reason(RAW),
        q.worst_machines(reading=RAW),
        *(q.oee(t, RAW) for t in MachineType),
    ]
    floor = [q.current_state_codes(), q.state_changes()]
    machine = [
        q.state_changes(),
        q.speed(),
        q.machine_info(Field.RATED_SPEED),
        q.counters(),
        q.stops(),
        q.running_time(RAW),
        q.stop_count(RAW),
        q.mttr(RAW),
    ]
    maintenance = [
        q.down_now(),
        q.open_alerts(),
        q.repeated_faults(reading=RAW),
        q.run_hours_since_service(),
        q.machine_info(Field.SERVICE_INTERVAL_H),
    ]
    boards = {"ftel-overview": overview, "ftel-floor": floor, "ftel-machine": machine, "ftel-maintenance": maintenance}
    variables = [q.variable_values(v) for v in q.MACHINE_VARIABLES]
    for uid, queries in boards.items():
        for query in (*variables, *queries):
            yield f"{uid} {query.name}", query.influxql, shift
    pipeline = next(b for b in all_dashboards() if b["uid"] == "ftel-pipeline")
    for variable in pipeline["templating"]["list"]:
        yield f"ftel-pipeline variable {variable['name']}", variable["query"], shift
    for panel in panels_of(pipeline):
        for target in panel.get("targets", []):
            if "query" in target:
                yield f"ftel-pipeline {panel['title']} {target['refId']}", target["query"], shift


def now_queries(shift: q.Binding, *, snapshot: bool) -> Iterator[tuple[str, str, q.Binding]]:
    """The "now" counts at the shift's end over the whole plant: from the settled state-now snapshot (the boards
    and report now), or from every machine's last point (before it)."""
    for state in STATE_ORDER:
        query = q.machines_in_state(state) if snapshot else q.machines_in_state_from_points(state)
        yield f"machines {state.value} now", query.influxql, shift
    if snapshot:
        yield "machines by state now (report)", q.machines_by_state().influxql, shift
    else:
        yield "every machine's state now (report, before)", q.current_states().influxql, shift


def time_queries(name: str, client: InfluxQuery, queries: Iterator[tuple[str, str, q.Binding]], repeat: int) -> Timings:
    timings = Timings(name)
    with console.status(f"{name}…") as status:
        for label, text, binding in queries:
            status.update(f"{name}: {label}")
            bound = q.bind(text, binding)
            samples = []
            for _ in range(repeat):
                began = time.perf_counter()
                client.query(bound)
                samples.append(time.perf_counter() - began)
            timings.add(label, samples)
    console.print(f"{name}: {len(timings.seconds)} queries, {sum(timings.seconds.values()):.1f} s")
    return timings


def time_report(
    name: str, settings: InfluxSettings, binding: q.Binding, repeat: int, **options: Any
) -> tuple[Timings, ReportData]:
    """Every statement of the report, timed; the report's figures."""
    client = TimedQuery(settings)
    per_statement: dict[str, list[float]] = {}
    data = None
    with console.status(f"{name}…"):
        for _ in range(repeat):
            client.times.clear()
            data = collect(client, binding, **options)
            for index, (text, seconds) in enumerate(client.times):
                per_statement.setdefault(f"{index:02d} {_statement_name(text)}", []).append(seconds)
    client.close()
    assert data is not None
    timings = Timings(name)
    for label, samples in per_statement.items():
        timings.add(label, samples)
    console.print(f"{name}: {len(timings.seconds)} queries, {sum(timings.seconds.values()):.1f} s")
    return timings, data


def _statement_name(text: str) -> str:
    """A short name for a report statement: what it selects and from where."""
    select = text.split(" FROM ", maxsplit=1)[0][len("SELECT ") :][:40]
    measurement = next((m for m in text.split('"') if m in MEASUREMENTS), "")
    return f"{select} … {measurement}"


def same_report(a: ReportData, b: ReportData) -> list[str]:
    """Where two reports' figures differ (floats to 1e-9)."""

    def close(x: Any, y: Any) -> bool:
        if isinstance(x, float) and isinstance(y, float):
            return abs(x - y) <= 1e-9 * max(abs(x), abs(y), 1.0)
        if isinstance(x, dict) and isinstance(y, dict):
            return x.keys() == y.keys() and all(close(x[k], y[k]) for k in x)
        if isinstance(x, list) and isinstance(y, list):
            return len(x) == len(y) and all(close(i, j) for i, j in zip(x, y, strict=True))
        if hasattr(x, "__slots__") and type(x) is type(y):
            return all(close(getattr(x, s), getattr(y, s)) for s in x.__slots__)
        return bool(x == y)

    names = ("utilisation", "utilisation_by_workshop", "utilisation_by_type", "downtime", "oee", "machines_by_state")
    differ = [n for n in names if not close(getattr(a, n), getattr(b, n))]
    if [w.down_ms for w in a.worst] != [w.down_ms for w in b.worst]:
        differ.append("worst")
    return differ


# --- the run -----------------------------------------------------------------------------------------------


def run_size(
    services: Services,
    filled: Filled,
    repeat: int,
    settings_for: Callable[[str], InfluxSettings],
    *,
    raw_up_to: int,
) -> list[Timings]:
    settings = settings_for(filled.database)
    client = InfluxQuery(settings)
    shift = q.Binding(filled.start_ms, filled.end_ms)
    snapshot(services, filled)
    sets = [
        time_queries(f"now, raw last points ({filled.machines:,})", client, now_queries(shift, snapshot=False), repeat),
        time_queries(f"now, snapshot ({filled.machines:,})", client, now_queries(shift, snapshot=True), repeat),
        time_queries(f"boards 1m ({filled.machines:,})", client, board_queries(client, shift), repeat),
        time_queries(
            f"boards 1h ({filled.machines:,})",
            client,
            board_queries(client, q.Binding(shift.start_ms, shift.end_ms, resolution=q.HOUR)),
            repeat,
        ),
    ]
    report_shift, data = time_report(f"report, shift ({filled.machines:,})", settings, shift, repeat)
    head, tail = PART_HOUR_EDGES_MIN
    part = q.Binding(shift.start_ms + head * MINUTE_MS, shift.end_ms - tail * MINUTE_MS)
    report_part, data_part = time_report(f"report, part hours ({filled.machines:,})", settings, part, repeat)
    sets += [report_shift, report_part]
    if filled.machines > raw_up_to:
        # Reading raw points is what the boards did before roll-ups: minutes per query at this size.
        console.print(f"raw points not read at {filled.machines:,} machines (--raw-up-to {raw_up_to:,})")
        client.close()
        return sets
    raw_repeat = 1 if filled.machines > 10_000 else repeat
    sets.append(time_queries(f"raw: boards ({filled.machines:,})", client, raw_board_queries(shift), raw_repeat))
    raw_readings = ReportReadings(RAW, (RAW,))
    raw_report, raw_data = time_report(
        f"raw: report ({filled.machines:,})", settings, shift, raw_repeat, readings=raw_readings, timeline_machines=None
    )
    sets.append(raw_report)
    _, raw_part = time_report("raw: report, part hours", settings, part, 1, readings=raw_readings)
    for label, a, b in (("shift", data, raw_data), ("part hours", data_part, raw_part)):
        differ = same_report(a, b)
        verdict = "yes" if not differ else f"NO: {', '.join(differ)}"
        console.print(f"report over the {label} from roll-ups = from raw points: {verdict}")
    client.close()
    return sets


def print_sets(title: str, sets: Sequence[Timings]) -> None:
    table = Table(title=title)
    for column in ("set", "queries", "p50 s", "p95 s", "max s", "sum s"):
        table.add_column(column, justify="left" if column == "set" else "right")
    for s in sets:
        table.add_row(
            s.name,
            str(len(s.seconds)),
            f"{s.percentile(0.5):.3f}",
            f"{s.percentile(0.95):.3f}",
            f"{max(s.seconds.values()):.3f}",
            f"{sum(s.seconds.values()):.2f}",
        )
    console.print(table)
    for s in sets:
        console.print(f"{s.name}, slowest:")
        for name, seconds in sorted(s.seconds.items(), key=lambda kv: -kv[1])[:SLOWEST]:
            console.print(f"  {seconds:7.3f} s  {name}", highlight=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, nargs="+", default=[6000, 60000])
    parser.add_argument("--hours", type=int, default=8)
    parser.add_argument("--telemetry-s", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--raw-up-to", type=int, default=10_000, help="read the raw points too only up to this many machines"
    )
    parser.add_argument("--stack-dir", type=Path, help="keep the stack and its databases here between runs")
    parser.add_argument("--stop", action="store_true", help="stop the stack kept in --stack-dir and exit")
    args = parser.parse_args()
    stack, kept = open_stack(args.stack_dir)
    if args.stop:
        stack.down()
        return 0
    with console.status("starting Mosquitto and InfluxDB…"):
        stack.up()
    services = Services(stack)

    def as_supervisor(database: str) -> InfluxSettings:
        # Boards and report read as the read-only supervisor, as `ftel report` and Grafana do.
        influx = services.settings(database, identity=SUPERVISOR).influx
        return influx.model_copy(update={"timeout_s": QUERY_TIMEOUT_S})

    results: list[Timings] = []
    try:
        for machines in args.machines:
            filled = fill(services, machines, args.hours, args.telemetry_s, stack.directory)
            sets = run_size(services, filled, args.repeat, as_supervisor, raw_up_to=args.raw_up_to)
            size = f"{machines:,} machines × {args.hours} h"
            print_sets(f"{size} ({filled.points:,} points, backfilled in {filled.fill_s:.0f} s)", sets)
            results += sets
    finally:
        if not kept:
            stack.down()
    print_sets("all sizes", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
