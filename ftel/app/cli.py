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
# Only the module of the command given is imported: a worker's start does not pay for every other command's
# libraries (asyncua, matplotlib: about 2 CPU seconds for all, at every process start). tests/unit/test_cli.py
# checks that each module registers exactly the commands written here.
COMMANDS: dict[str, str] = {
    "stack": "ftel.app.stack_command",
    "auth": "ftel.app.auth_command",
    "calendar": "ftel.app.calendar_command",
    "run": "ftel.app.run",
    "simulate": "ftel.app.simulate_command",
    "gateway": "ftel.app.gateway_command",
    "ingest": "ingest.cli",
    "dashboards": "dashboards.cli",
    "report": "dashboards.cli",
    "orders": "dashboards.orders_cli",
    "settle": "dashboards.settle_cli",
    "operators": "operators.cli",
    "alerts": "alerts.cli",
    "loadtest": "ftel.app.loadtest_command",
}

Handler = Callable[[argparse.Namespace, Settings], int]


def command_in(argv: list[str]) -> str | None:
    """The command ``argv`` names: its first word that is neither an option nor ``--config``'s value."""
    words = iter(argv)
    for word in words:
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` alone when it is one of ours, else for every command (the overall help, or
    argparse's error listing them)."""
    parser = argparse.ArgumentParser(
        prog="ftel",
        description="Factory telemetry for cashmere workshops: simulated or real machines → edge gateways → "
        "MQTT → ingest workers → InfluxDB → Grafana boards, shift reports and maintenance alerts.",
        epilog="Settings come from FTEL_* environment variables or a YAML file (--config); see README.",
    )
    parser.add_argument("--config", type=Path, help="YAML settings file (same keys as the FTEL_* variables)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    stop_with_parent()  # a child of `ftel run`, `ftel loadtest` or `ftel ingest --processes` ends with it
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(command_in(words))
    args = parser.parse_args(words)
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
