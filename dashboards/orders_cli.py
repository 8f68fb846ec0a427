"""``ftel orders check | settle``: whether an orders file is sound (styles, orders, the controller's programs),
and settling the windows split at job changes for the orders board (dashboards/orders_rollup.py)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ftel.errors import CliError
from ftel.plant.orders import OrderBook, load_order_book
from ftel.settings import Settings

# How far back a settle reads by default: a shift, so the estimated finish follows the rate of the last shift.
DEFAULT_SETTLE_HOURS = 8.0


def _book(args: argparse.Namespace, settings: Settings) -> tuple[Path | None, OrderBook]:
    path: Path | None = args.file or settings.orders
    return path, load_order_book(path) if path else OrderBook()


def _check(args: argparse.Namespace, settings: Settings) -> int:
    path, book = _book(args, settings)
    if path is None:
        raise CliError("no orders file: give --file or set FTEL_ORDERS (docs/orders.md)")
    for style in book.styles:
        program = ", ".join(
            f"{kind} {value}" for kind, value in (("program", style.program), ("name", style.program_name)) if value
        )
        print(
            f"style {style.id}: standard {style.standard_s:g} s a piece"
            + (f"; controller {program}" if program else "")
        )
    for order in book.orders:
        print(
            f"order {order.id}: {order.target} pieces of {order.style}"
            + (f" for {order.customer}" if order.customer else "")
        )
    print(f"{path}: ok; {len(book.styles)} styles, {len(book.orders)} orders")
    return 0


def _settle(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards import queries as q
    from dashboards.orders_rollup import settle_orders
    from ftel.security.credentials import with_identity
    from ftel.security.identities import ALERTS, SUPERVISOR
    from ftel.storage.query import InfluxQuery, QueryError
    from ftel.storage.writer import WriteError, direct_write_policy, make_writer

    _, book = _book(args, settings)
    end = int(args.end_ms if args.end_ms is not None else time.time() * 1000) // q.MS_PER_MINUTE * q.MS_PER_MINUTE
    binding = q.Binding(end - int(args.hours * q.MS_PER_HOUR), end)
    # Reads as the supervisor (read-only), writes the settled points as the alerts identity (derived figures).
    writer = make_writer(with_identity(settings, ALERTS).influx)
    try:
        written = settle_orders(
            InfluxQuery(with_identity(settings, SUPERVISOR).influx),
            writer,
            binding,
            book,
            site=settings.site,
            policy=direct_write_policy(settings.influx),
        )
    except (QueryError, WriteError) as error:
        raise CliError(f"cannot settle orders ({error}); check FTEL_INFLUX__URL and the credentials") from error
    finally:
        writer.close()
    print(f"settled {written} points over the {args.hours:g} hours before {end} ms")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "orders",
        help="styles and orders: check an orders file, settle the orders board's figures",
        description="Styles (standard time per piece, the controller's program) and orders (style, target) from "
        "the orders file (settings: orders, FTEL_ORDERS; docs/orders.md).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate an orders file (errors name the line)")
    check.add_argument("--file", type=Path, help="orders YAML (default: the settings' orders)")
    check.set_defaults(handler=_check)
    settle = actions.add_parser(
        "settle", help="write the windows split at job changes and each order's progress, for the orders board"
    )
    settle.add_argument("--file", type=Path, help="orders YAML (default: the settings' orders)")
    settle.add_argument(
        "--hours", type=float, default=DEFAULT_SETTLE_HOURS, help="how far back (default 8: the rate of a shift)"
    )
    settle.add_argument("--end-ms", type=int, help="the end, epoch ms (default: now, to the minute)")
    settle.set_defaults(handler=_settle)
