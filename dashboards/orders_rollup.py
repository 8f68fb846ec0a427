"""Settling orders for the board: Grafana speaks InfluxQL, which cannot cut a window at a job change, so the
windows split at job changes (ftel/plant/orders.py) are written back as points a board can sum, and each order's
progress as of a moment (docs/orders.md).

``settle_orders`` over [start, end): one ``job_time`` point per machine, one-minute window and job it made
something for or ran for (a window cut by a change gives two), and one ``order_status`` point per order at ``end``
(good pieces to date, target, progress, the estimated finish at the rate of [start, end)). Idempotent: settling the
same span again writes the same points, so it runs every few minutes over the last hours (``ftel orders settle``),
and a late window or job change is taken in at the next run.
"""

from __future__ import annotations

from collections.abc import Sequence

from dashboards import queries as q
from dashboards.orders_data import collect_orders, read_changes, windows
from ftel.plant.orders import OrderBook, split
from ftel.storage.lineproto import Point, encode_batch
from ftel.storage.points import job_time_point, order_status_point
from ftel.storage.query import InfluxQuery
from ftel.storage.writer import LineWriter, RetryPolicy, write_with_retry

SETTLE_BATCH_POINTS = 5_000


def settled_points(client: InfluxQuery, binding: q.Binding, book: OrderBook, *, site: str) -> list[Point]:
    """The job_time points of the binding's range and the order_status points at its end."""
    found = read_changes(client, binding, book)
    if not found:
        return []
    machines = {f.change.machine_id: f for f in found}
    made = [w for w in windows(client, binding, hourly=False) if w.machine_id in machines]
    points: list[Point] = []
    for job, part in split(made, [f.change for f in found]):
        if not (part.counts.units or part.counts.run_ms):
            continue
        stored = machines[part.machine_id]
        style = book.style(job.style)
        points.append(
            job_time_point(
                part,
                site=site,
                workshop=stored.workshop,
                machine_type=stored.machine_type,
                style=job.style,
                order=job.order,
                standard_s=style.standard_s if style else 0.0,
            )
        )
    data = collect_orders(client, binding, book)
    points.extend(order_status_point(figures, site=site) for figures in data.orders)
    return points


def settle_orders(
    client: InfluxQuery,
    writer: LineWriter,
    binding: q.Binding,
    book: OrderBook,
    *,
    site: str,
    policy: RetryPolicy,
) -> int:
    """Write what ``settled_points`` makes, each batch retried by ``policy`` (a WriteError when it gives up);
    returns how many points."""
    return write_points(writer, settled_points(client, binding, book, site=site), policy)


def write_points(writer: LineWriter, points: Sequence[Point], policy: RetryPolicy) -> int:
    """Write settled points in batches, each retried by ``policy`` (a WriteError when it gives up)."""
    for first in range(0, len(points), SETTLE_BATCH_POINTS):
        write_with_retry(writer, encode_batch(list(points[first : first + SETTLE_BATCH_POINTS])), policy)
    return len(points)
