"""Benchmark (not a test): what planned time costs the shift report. Planned time is computed from the calendar at
read time: the period's planned spans become slices of their own (whole hours from the 1h roll-ups, edge minutes
from the 1m roll-ups), added up in one statement per question. This backfills a generated plant on two 12-hour
shifts with breaks and Sundays off, and times, for a shift, a day and a week:

- calendar: the report's planned-time figures (state totals over the planned spans and over the period, OEE
  from them), each --repeat times, the median;
- blind: the calendar-blind OEE query over the period (what the report ran before), for comparison;
- the number of slices the planned spans make.

    python bench/planned_time.py [--machines 2000] [--days 7] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboards import queries as q
from dashboards.report_data import planned_figures, planned_readings, report_readings
from ftel.contract.states import MachineType
from ftel.stack import LocalStack
from ftel.storage.query import InfluxQuery
from simulators.backfill import backfill
from simulators.plant import generate_plant
from tests.calendars import two_twelves
from tests.support import Services

console = Console(width=140)
DAY_MS = 86_400_000


def median_s(run: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def _run_all(client: InfluxQuery, statements: list[str]) -> None:
    for statement in statements:
        client.rows(statement)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=2000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    calendar = two_twelves()
    # Monday 08:00 plant time, a whole week in the past.
    monday = datetime(2026, 11, 2, 8, 0, tzinfo=calendar.zone)
    start = int(monday.timestamp() * 1000)
    end = start + args.days * DAY_MS
    stack = LocalStack.on_free_ports(Path(tempfile.mkdtemp(prefix="ftel-bench-calendar-")) / "stack")
    stack.up()
    try:
        services = Services(stack)
        settings = services.admin("bench_calendar")
        plant = generate_plant(args.machines)
        began = time.perf_counter()
        points = backfill(
            plant,
            settings.influx,
            start_ms=start,
            end_ms=end,
            window_ms=60_000,
            telemetry_interval_ms=3_600_000,
            calendar=calendar,
        )
        console.print(
            f"{args.machines:,} machines, {args.days} days on two 12-hour shifts: {points:,} points in "
            f"{time.perf_counter() - began:.0f} s"
        )
        client = InfluxQuery(settings.influx)
        table = Table("period", "planned spans", "slices", "calendar s", "blind s")
        night = calendar.shift(monday.date(), "night")
        for label, (a, b) in (
            ("night shift", (night.start_ms, night.end_ms)),
            ("day, 08:00 to 08:00", (start, start + DAY_MS)),
            (f"{args.days} days", (start, end)),
        ):
            binding = q.Binding(a, b)
            readings = report_readings(binding)
            planned = planned_readings(binding, calendar)
            calendar_s = median_s(partial(planned_figures, client, binding, readings, calendar), args.repeat)
            blind = [q.bind(q.oee(t, readings.workshops).influxql, binding) for t in MachineType]
            blind_s = median_s(partial(_run_all, client, blind), args.repeat)
            slices = sum(len(r.slices) for r in planned)
            table.add_row(
                label, str(len(calendar.planned_spans(a, b))), str(slices), f"{calendar_s:.3f}", f"{blind_s:.3f}"
            )
        console.print(table)
    finally:
        stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
