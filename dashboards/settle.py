"""One settle step for the boards (docs/calendar.md, "Settled for the boards"): what Grafana's InfluxQL cannot
compute, written as points it can sum, from the stored windows:

- planned time (dashboards/calendar_rollup.py): state times inside the calendar's planned time and outside it;
- classified reasons (dashboards/reasons_rollup.py): downtime per attributed reason, unexplained apart;
- orders (dashboards/orders_rollup.py): windows split at job changes, each order's progress.
- state now (dashboards/state_now.py): how many machines are in each state at the minute, for the "now" panels.

Every part is idempotent, so a deployment settles the last hours every minute beside ingest (``ftel settle
--every``, and ``ftel run`` does it for its own plant): late windows, an operator's reason given within the
lookback and a calendar change are taken in at the next run. Older ranges are settled again by hand
(``ftel settle --from --to``), e.g. after correcting last month's holidays: the report recomputes at read time,
the boards follow a settle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dashboards import queries as q
from dashboards.calendar_rollup import planned_points
from dashboards.orders_rollup import settled_points, write_points
from dashboards.reasons_rollup import classified_points
from dashboards.state_now import state_now_points
from dashboards.stops_data import read_reasons, read_stops
from ftel.errors import FtelError
from ftel.plant.calendar import Calendar
from ftel.plant.orders import OrderBook
from ftel.storage.query import InfluxQuery
from ftel.storage.stops import OPEN_STOP_LOOKBACK_MS
from ftel.storage.writer import LineWriter, RetryPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Settled:
    """What one settle wrote: points per part, and the range the roll-ups were settled over (whole hours)."""

    start_ms: int
    end_ms: int
    planned: int
    classified: int
    orders: int
    # Seconds each part took (read, computed, written): where the cost of a settle goes.
    seconds: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # The state-now snapshot: its points (one per workshop and machine type) and its seconds.
    state_now: int = 0
    state_now_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SettleInputs:
    calendar: Calendar
    book: OrderBook
    site: str


def whole_hours(start_ms: int, end_ms: int) -> tuple[int, int]:
    """[start_ms, end_ms) widened to whole hours, so every hourly point written holds all of its minutes."""
    return start_ms - start_ms % q.MS_PER_HOUR, -(-end_ms // q.MS_PER_HOUR) * q.MS_PER_HOUR


def settle(
    client: InfluxQuery,
    writer: LineWriter,
    inputs: SettleInputs,
    policy: RetryPolicy,
    *,
    start_ms: int,
    end_ms: int,
    now_ms: int | None = None,
) -> Settled:
    """Settle [start_ms, end_ms): planned time and classified reasons over its whole hours, orders over the range
    itself (the estimated finish follows the range's rate), and the state-now snapshot at the range's end or at
    ``now_ms`` if earlier (to the minute). Raises QueryError or WriteError."""
    first, last = whole_hours(start_ms, end_ms)
    hours = q.Binding(first, last)
    began = time.perf_counter()
    state_rows = client.rows(q.bind(q.workshop_windows("state").influxql, hours))
    planned = write_points(writer, planned_points(state_rows, inputs.calendar.planned_spans(first, last)), policy)
    planned_done = time.perf_counter()
    stops = read_stops(client, hours)
    reasons = read_reasons(client, hours, stops)
    logged_binding = q.Binding(first, last + OPEN_STOP_LOOKBACK_MS)
    logged = {r["reason"] for r in client.rows(q.bind(q.logged_reasons().influxql, logged_binding))}
    down_rows = client.rows(q.bind(q.workshop_windows("downtime").influxql, hours))
    classified = write_points(
        writer, classified_points(down_rows, stops, reasons, logged, start_ms=first, end_ms=last), policy
    )
    classified_done = time.perf_counter()
    orders_points = settled_points(client, q.Binding(start_ms, end_ms), inputs.book, site=inputs.site)
    orders = write_points(writer, orders_points, policy)
    orders_done = time.perf_counter()
    seconds = (planned_done - began, classified_done - planned_done, orders_done - classified_done)
    at_ms = end_ms if now_ms is None else min(end_ms, now_ms)
    state_now = write_points(writer, state_now_points(client, at_ms), policy)
    return Settled(first, last, planned, classified, orders, seconds, state_now, time.perf_counter() - orders_done)


def recent_range(now_ms: int, lookback_h: float) -> tuple[int, int]:
    """The lookback before ``now_ms``, to the minute."""
    end = now_ms - now_ms % q.MS_PER_MINUTE + q.MS_PER_MINUTE
    return end - int(lookback_h * q.MS_PER_HOUR), end


def settle_every(
    step: Callable[[int, int], Settled],
    *,
    every_s: float,
    lookback_h: float,
    stop: threading.Event,
    clock: Callable[[], float] = time.time,
) -> None:
    """Settle the lookback every ``every_s`` until ``stop`` is set. A failed settle (InfluxDB away past the write
    policy's cap) is logged and tried again at the next tick: settling is idempotent, nothing is lost."""
    while not stop.is_set():
        began = clock()
        try:
            done = step(*recent_range(int(began * 1000), lookback_h))
        except FtelError as error:
            log.warning("settle failed (%s); trying again in %g s", error, every_s)
        else:
            log.info(
                "settled %d planned-time, %d reason, %d order and %d state-now points in %.2f s (%.2f, %.2f, %.2f, "
                "%.2f)",
                done.planned,
                done.classified,
                done.orders,
                done.state_now,
                clock() - began,
                *done.seconds,
                done.state_now_s,
            )
        stop.wait(every_s)
