"""`ftel stack up|down|status`: the local Mosquitto and InfluxDB, configured from settings."""

from __future__ import annotations

import argparse

from ftel.settings import Settings
from ftel.stack import StackError, stack_from_settings


def _stack(args: argparse.Namespace, settings: Settings) -> int:
    from ftel.errors import CliError

    try:
        stack = stack_from_settings(settings)
        if args.action == "up":
            stack.up()
        elif args.action == "down":
            stack.down()
    except StackError as error:
        raise CliError(str(error)) from error
    for name, state in stack.status().items():
        print(f"{name:10} {state}")
    if args.action == "up":
        if stack.tls:
            print(f"{'mqtt tls':10} port {stack.mqtt_tls_port}, CA {stack.tls_files.ca.resolve()}")
        print(f"data under {settings.stack.dir.resolve()}; stop with: ftel stack down")
        print(f"credentials in {stack.auth_files.credentials.resolve()}; connect as one: ftel auth show NAME")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "stack",
        help="start, stop or inspect the local Mosquitto and InfluxDB",
        description="Runs Mosquitto and InfluxDB from Debian's packages (installed with apt-get when root and "
        "missing) with the project's configuration, data under FTEL_STACK__DIR, on the ports of FTEL_MQTT__PORT "
        "and FTEL_INFLUX__URL; creates the database and retention policy. Secure by default: an identity for "
        "every gateway of the plant, ingest-1 … ingest-N, alerts, supervisor, maintenance and admin (`ftel auth "
        "init`, run here when needed), no anonymous access, Mosquitto's ACL by role, InfluxDB users by access; "
        "FTEL_STACK__TLS adds MQTT over TLS and InfluxDB over HTTPS.",
    )
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.set_defaults(handler=_stack)
