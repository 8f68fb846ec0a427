"""Benchmark (not a test): what one settle step costs (`ftel settle`, dashboards/settle.py): the boards' planned
time, classified reasons and orders, written from the stored windows. A generated plant on two 12-hour shifts with
breaks and Sundays off is backfilled with simulated operators' reasons and knitting jobs; then, each --repeat
times (the median), one settle over:

- the last 8 hours (what `ftel settle --every` and `ftel run` do each minute, FTEL_SETTLE__LOOKBACK_H),
- the last hour (a shorter lookback),
- a whole day (settling again by hand after a calendar change, `--from/--to`),

with the points written per part, and the overview's settled queries over a day at 1h and at 1m.

    python bench/settle.py [--machines 500] [--days 2] [--repeat 3]
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
from dashboards.settle import Settled, SettleInputs, settle
from ftel.contract.states import MachineType
from ftel.plant.reasons import ReasonBook, UnexplainedRule
from ftel.plant.stops import micro_stop_limits_ms
from ftel.stack import LocalStack
from ftel.storage.query import InfluxQuery
from ftel.storage.writer import direct_write_policy, make_writer
from simulators.backfill import backfill
from simulators.jobs import default_order_book
from simulators.operators import OperatorPlay
from simulators.plant import generate_plant
from tests.calendars import two_twelves
from tests.support import Services

console = Console(width=140)
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def median_s(run: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=500)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    calendar = two_twelves()
    start = int(datetime(2026, 11, 2, 8, 0, tzinfo=calendar.zone).timestamp() * 1000)  # a Monday, 08:00
    end = start + args.days * DAY_MS
    stack = LocalStack.on_free_ports(Path(tempfile.mkdtemp(prefix="ftel-bench-settle-")) / "stack")
    stack.up()
    try:
        settings = Services(stack).admin("bench_settle")
        plant = generate_plant(args.machines)
        book = default_order_book()
        began = time.perf_counter()
        stored = backfill(
            plant,
            settings.influx,
            start_ms=start,
            end_ms=end,
            window_ms=60_000,
            telemetry_interval_ms=HOUR_MS,
            calendar=calendar,
            orders=book,
            operators=OperatorPlay(ReasonBook(), UnexplainedRule(600_000, calendar, micro_stop_limits_ms())),
        )
        console.print(
            f"{args.machines:,} machines in {len(plant.workshops)} workshops, {args.days} days on two 12-hour "
            f"shifts: {stored:,} points in {time.perf_counter() - began:.0f} s"
        )
        client = InfluxQuery(settings.influx)
        writer = make_writer(settings.influx)
        policy = direct_write_policy(settings.influx)
        inputs = SettleInputs(calendar, book, plant.site)
        table = Table(
            "settled range", "planned-time points", "reason points", "order points", "median s", "parts s (last)"
        )
        for label, first in (
            ("last 8 hours", end - 8 * HOUR_MS),
            ("last hour", end - HOUR_MS),
            ("a day", end - DAY_MS),
        ):
            done: list[Settled] = []

            def once(first: int = first, done: list[Settled] = done) -> None:
                done.append(settle(client, writer, inputs, policy, start_ms=first, end_ms=end))

            took = median_s(once, args.repeat)
            assert len({(d.planned, d.classified, d.orders) for d in done}) == 1, "settling again wrote otherwise"
            parts = " / ".join(f"{part:.2f}" for part in done[-1].seconds)
            table.add_row(
                label, f"{done[0].planned:,}", f"{done[0].classified:,}", f"{done[0].orders:,}", f"{took:.2f}", parts
            )
        console.print(table)
        boards = Table("overview query, a day", "at 1h s", "at 1m s")
        day = end - DAY_MS
        for query in (
            q.oee(MachineType.CARDING, over="planned"),
            q.calendar_time(),
            q.downtime_by_reason(classified=True),
            q.unexplained_downtime_share(),
        ):
            timings = [
                median_s(partial(client.rows, q.bind(query.influxql, q.Binding(day, end, resolution=r))), args.repeat)
                for r in (q.HOUR, q.MINUTE)
            ]
            boards.add_row(query.name, *(f"{t:.3f}" for t in timings))
        console.print(boards)
        writer.close()
    finally:
        stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
