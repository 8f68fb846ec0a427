"""`ftel operators serve`: the operator page (docs/operators.md)."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

from pydantic import SecretStr

from ftel.errors import CliError
from ftel.plant.calendar import site_calendar
from ftel.plant.orders import OrderBook, load_order_book
from ftel.plant.reasons import load_reasons, unexplained_rule
from ftel.security.credentials import Credentials, load_credentials, with_identity
from ftel.security.identities import SUPERVISOR, InfluxUser
from ftel.settings import InfluxSettings, Settings
from ftel.storage.query import InfluxQuery
from ftel.storage.writer import direct_write_policy, make_writer
from operators.accounts import Accounts
from operators.app import OperatorPage
from operators.board import StopReader
from operators.jobs import JobDesk
from operators.server import page_server
from operators.sessions import Sessions

log = logging.getLogger(__name__)


def writer_influx(settings: Settings, credentials: Credentials) -> InfluxSettings:
    """The page writes reasons as ``ftel_operator`` (write only), unless the settings name a user of their own."""
    if settings.influx.username is not None or settings.influx.token is not None:
        return settings.influx
    password = SecretStr(credentials.influx_password(InfluxUser.OPERATOR))
    return settings.influx.model_copy(update={"username": InfluxUser.OPERATOR.value, "password": password})


def build_page(
    settings: Settings, credentials: Credentials, *, now_ms: Callable[[], int] = lambda: int(time.time() * 1000)
) -> OperatorPage:
    """The page reading as the read-only user and writing as the operator user (``now_ms``: the plant's clock)."""
    calendar = site_calendar(settings.calendar)
    reader = StopReader(
        InfluxQuery(with_identity(settings, SUPERVISOR).influx),
        settings.site,
        unexplained_rule(settings, calendar),
        int(settings.operators.recent_h * 3_600_000),
    )
    return OperatorPage(
        accounts=Accounts.from_credentials(credentials),
        sessions=Sessions(settings.operators.session_idle_s, time.monotonic),
        reader=reader,
        desk=JobDesk(
            reader.client,
            settings.site,
            load_order_book(settings.orders) if settings.orders else OrderBook(),
            settings.operators.window_s * 1000,
        ),
        writer=make_writer(writer_influx(settings, credentials)),
        write_policy=direct_write_policy(settings.influx),
        book=load_reasons(settings.operators.reasons),
        zone=calendar.zone,
        secure_cookies=settings.operators.secure_cookies,
        now_ms=now_ms,
    )


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    path = settings.credentials_file
    if not path.exists():
        raise CliError(
            f"no credentials file at {path}: run `ftel auth init`, then `ftel auth add NAME --role operator`"
        )
    credentials = load_credentials(path)
    page = build_page(settings, credentials)
    host = args.host or settings.operators.host
    port = settings.operators.port if args.port is None else args.port
    server = page_server(page, host, port)
    print(f"operator page on http://{host}:{server.server_port}/ (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "operators",
        help="the operator page: reasons for stops the machines gave none",
        description="A page for the workshop's tablet or phone (docs/operators.md): operators sign in, see their "
        "workshops' open and recent stops without a machine reason, and give or correct one.",
    )
    sub = parser.add_subparsers(dest="operators_command", metavar="ACTION", required=True)
    serve = sub.add_parser("serve", help="serve the page (FTEL_OPERATORS__HOST/PORT)")
    serve.add_argument("--host", help="address to listen on (default FTEL_OPERATORS__HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default FTEL_OPERATORS__PORT, 8090; 0: any free one)")
    serve.set_defaults(handler=_serve)
