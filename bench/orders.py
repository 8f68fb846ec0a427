"""Benchmark (not a test): what orders and styles cost the shift report and the board's settling. A plant of
knitting machines changing style and order (simulators/jobs.py) is backfilled; for a shift, a day and the whole
span this times, each --repeat times (the median):

- report: the report's orders section (collect_orders: the period's figures and each order's to date, reading
  machine hours where no change falls and one-minute windows in the hours of a change and at the edges);
- minutes only: the same figures from every one-minute window (what reading no machine hours would cost);
- settle: what `ftel orders settle --hours 8` computes before writing (settled_points over the last 8 hours);

and prints how many rows InfluxDB hands back for each.

    python bench/orders.py [--machines 200] [--days 3] [--repeat 3]
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
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboards import queries as q
from dashboards.orders_data import collect_orders, read_changes, windows
from dashboards.orders_rollup import settled_points
from ftel.contract.states import MachineType
from ftel.plant.layout import MachineSpec, Plant, Workshop
from ftel.plant.orders import split, totals
from ftel.stack import LocalStack
from ftel.storage.query import InfluxQuery
from simulators.backfill import backfill
from simulators.jobs import default_order_book
from tests.calendars import two_twelves
from tests.support import Services

console = Console(width=140)
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
BOOK = default_order_book()


class Counting(InfluxQuery):
    """Counts the rows InfluxDB hands back: what a reading costs beyond its statements."""

    fetched = 0

    def rows(self, influxql: str) -> list[dict[str, Any]]:
        found = super().rows(influxql)
        self.fetched += len(found)
        return found


def fetched(client: Counting, run: Callable[[], object]) -> int:
    before = client.fetched
    run()
    return client.fetched - before


def median_s(run: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def knitting_plant(machines: int) -> Plant:
    specs = tuple(MachineSpec(id=f"KNIT-{i + 1:04d}", type=MachineType.KNITTING) for i in range(machines))
    return Plant(
        site="qinghe", workshops=(Workshop(id="knit", name="Flat knitting", gateway_id="gw-knit", machines=specs),)
    )


def minutes_only(client: InfluxQuery, binding: q.Binding, since_ms: int) -> None:
    changes = [f.change for f in read_changes(client, binding, BOOK)]
    totals(split(windows(client, q.Binding(binding.start_ms, binding.end_ms), hourly=False), changes))
    if since_ms < binding.start_ms:
        totals(split(windows(client, q.Binding(since_ms, binding.end_ms), hourly=False), changes))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=200)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    calendar = two_twelves()
    start = int(datetime(2026, 11, 2, 8, 0, tzinfo=calendar.zone).timestamp() * 1000)  # a Monday, 08:00
    end = start + args.days * DAY_MS
    stack = LocalStack.on_free_ports(Path(tempfile.mkdtemp(prefix="ftel-bench-orders-")) / "stack")
    stack.up()
    try:
        settings = Services(stack).admin("bench_orders")
        began = time.perf_counter()
        points = backfill(
            knitting_plant(args.machines),
            settings.influx,
            start_ms=start,
            end_ms=end,
            window_ms=60_000,
            telemetry_interval_ms=HOUR_MS,
            calendar=calendar,
            orders=BOOK,
        )
        client = Counting(settings.influx)
        changes = [f.change for f in read_changes(client, q.Binding(start, end), BOOK)]
        console.print(
            f"{args.machines:,} knitting machines, {args.days} days on two 12-hour shifts: {points:,} points, "
            f"{len(changes):,} job changes, in {time.perf_counter() - began:.0f} s"
        )
        table = Table("period", "rows fetched (report)", "rows fetched (minutes only)", "report s", "minutes only s")
        for label, a in (("last shift", end - 12 * HOUR_MS), ("last day", end - DAY_MS), (f"{args.days} days", start)):
            binding = q.Binding(a, end)
            hours_and_minutes = fetched(client, partial(collect_orders, client, binding, BOOK))
            every_minute = fetched(client, partial(minutes_only, client, binding, start))
            report_s = median_s(partial(collect_orders, client, binding, BOOK), args.repeat)
            minutes_s = median_s(partial(minutes_only, client, binding, start), args.repeat)
            table.add_row(label, f"{hours_and_minutes:,}", f"{every_minute:,}", f"{report_s:.2f}", f"{minutes_s:.2f}")
        console.print(table)
        settle = q.Binding(end - 8 * HOUR_MS, end)
        settle_s = median_s(partial(settled_points, client, settle, BOOK, site="qinghe"), args.repeat)
        made = len(settled_points(client, settle, BOOK, site="qinghe"))
        console.print(f"settle over the last 8 hours: {made:,} points computed in {settle_s:.2f} s (median)")
    finally:
        stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
