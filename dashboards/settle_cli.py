"""``ftel settle [--every S] [--from T --to T]``: the boards' settled figures (planned time, classified reasons,
orders, state now; dashboards/settle.py), once over a range or the recent hours, or every S seconds beside ingest."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftel.errors import CliError
from ftel.settings import Settings

if TYPE_CHECKING:
    from dashboards.settle import Settled
    from ftel.storage.writer import LineWriter


def make_step(settings: Settings, orders: Path | None = None) -> tuple[Callable[[int, int], Settled], LineWriter]:
    """The settle of one range as ``settle_every`` calls it, reading as the supervisor (read-only) and writing as
    the alerts identity (derived figures), with the settings' calendar and orders file; and its writer to close."""
    from dashboards.settle import SettleInputs, settle
    from ftel.plant.calendar import site_calendar
    from ftel.plant.orders import OrderBook, load_order_book
    from ftel.security.credentials import with_identity
    from ftel.security.identities import ALERTS, SUPERVISOR
    from ftel.storage.query import InfluxQuery
    from ftel.storage.writer import direct_write_policy, make_writer

    path = orders or settings.orders
    inputs = SettleInputs(
        site_calendar(settings.calendar), load_order_book(path) if path else OrderBook(), settings.site
    )
    client = InfluxQuery(with_identity(settings, SUPERVISOR).influx)
    writer = make_writer(with_identity(settings, ALERTS).influx)
    policy = direct_write_policy(settings.influx)

    def step(start_ms: int, end_ms: int) -> Settled:
        now_ms = int(time.time() * 1000)  # the state-now snapshot: never stamped ahead of what is stored
        return settle(client, writer, inputs, policy, start_ms=start_ms, end_ms=end_ms, now_ms=now_ms)

    return step, writer


def _settle(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.settle import recent_range, settle_every
    from dashboards.shifts import between
    from ftel.children import Interrupts
    from ftel.plant.calendar import site_calendar
    from ftel.storage.query import QueryError
    from ftel.storage.writer import WriteError

    if (args.start is None) != (args.end is None):
        raise CliError("give both --from and --to, or neither (the last FTEL_SETTLE__LOOKBACK_H hours)")
    if args.every is not None and args.start is not None:
        raise CliError("--every settles the recent hours again and again: give it without --from/--to")
    step, writer = make_step(settings, args.file)
    try:
        if args.every is not None:
            # Ctrl-C or SIGTERM (``ftel run``'s stop) ends the loop between two settles.
            interrupts = Interrupts()
            try:
                settle_every(step, every_s=args.every, lookback_h=settings.settle.lookback_h, stop=interrupts.stop)
            finally:
                interrupts.restore()
            return 0
        if args.start is not None:
            period = between(args.start, args.end, site_calendar(settings.calendar))
            start_ms, end_ms = period.start_ms, period.end_ms
        else:
            start_ms, end_ms = recent_range(int(time.time() * 1000), settings.settle.lookback_h)
        began = time.perf_counter()
        try:
            done = step(start_ms, end_ms)
        except (QueryError, WriteError) as error:
            raise CliError(f"cannot settle ({error}); check FTEL_INFLUX__URL and the credentials") from error
        print(
            f"settled {done.planned} planned-time, {done.classified} reason, {done.orders} order and "
            f"{done.state_now} state-now points "
            f"over {done.start_ms} .. {done.end_ms} ms in {time.perf_counter() - began:.2f} s"
        )
        return 0
    finally:
        writer.close()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "settle",
        help="write the boards' planned time, classified reasons and orders figures (run it beside ingest)",
        description="Grafana's InfluxQL cannot join state times with the plant calendar, stops with operators' "
        "reasons, or windows with job changes: settling writes those figures as points the boards sum "
        "(docs/calendar.md). Idempotent: run it every minute over the recent hours (--every), and over an "
        "older range after a calendar change (--from/--to).",
    )
    parser.add_argument("--every", type=float, metavar="S", help="settle the recent hours every S seconds")
    parser.add_argument("--from", dest="start", metavar="TIME", help="range start, ISO (plant time without offset)")
    parser.add_argument("--to", dest="end", metavar="TIME", help="range end, ISO")
    parser.add_argument("--file", type=Path, help="orders YAML (default: the settings' orders)")
    parser.set_defaults(handler=_settle)
