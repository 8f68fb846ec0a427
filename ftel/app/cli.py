"""`ftel`: one console script. The commands that compose packages live here in ftel.app; a shell's own commands
(ingest, alerts, dashboards, operators) live with it. Each is a module with ``register``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from ftel.children import stop_with_parent
from ftel.errors import CliError, FtelError

__all__ = ["CliError", "build_parser", "main"]
from ftel.settings import Settings, load_settings

# Each module has register(subparsers) and sets `handler` on its parsers: handler(args, settings) -> exit code.
COMMAND_MODULES = (
    "ftel.app.stack_command",
    "ftel.app.auth_command",
    "ftel.app.calendar_command",
    "ftel.app.run",
    "ftel.app.simulate_command",
    "ftel.app.gateway_command",
    "ingest.cli",
    "dashboards.cli",
    "dashboards.orders_cli",
    "dashboards.settle_cli",
    "operators.cli",
    "alerts.cli",
    "ftel.app.loadtest_command",
)

Handler = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftel",
        description="Factory telemetry for cashmere workshops: simulated or real machines → edge gateways → "
        "MQTT → ingest workers → InfluxDB → Grafana boards, shift reports and maintenance alerts.",
        epilog="Settings come from FTEL_* environment variables or a YAML file (--config); see README.",
    )
    parser.add_argument("--config", type=Path, help="YAML settings file (same keys as the FTEL_* variables)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    stop_with_parent()  # a child of `ftel run`, `ftel loadtest` or `ftel ingest --processes` ends with it
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO; only -v wants that.
    logging.getLogger("httpx").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        settings = load_settings(args.config)
        handler: Handler = args.handler
        return handler(args, settings)
    except FtelError as error:  # CliError and every other error a person can act on
        print(f"ftel: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
