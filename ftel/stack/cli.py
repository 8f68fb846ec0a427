"""`ftel stack up|down|status`: the local Mosquitto and InfluxDB, configured from settings."""

from __future__ import annotations

import argparse
from urllib.parse import urlparse

from ftel.settings import Settings
from ftel.stack.services import LocalStack, StackError, free_port


def stack_from_settings(settings: Settings) -> LocalStack:
    influx_port = urlparse(settings.influx.url).port or 8086
    rpc_file = settings.stack.dir / "influxdb" / "rpc.port"
    # The RPC port is internal to InfluxDB (backup/restore); any free one will do, kept stable across runs.
    rpc_port = int(rpc_file.read_text()) if rpc_file.exists() else free_port()
    rpc_file.parent.mkdir(parents=True, exist_ok=True)
    rpc_file.write_text(str(rpc_port))
    return LocalStack(
        settings.stack.dir,
        settings.mqtt.port,
        influx_port,
        rpc_port,
        database=settings.influx.database,
        retention_policy=settings.influx.retention_policy,
        retention=settings.influx.retention,
    )


def _stack(args: argparse.Namespace, settings: Settings) -> int:
    from ftel.errors import CliError

    stack = stack_from_settings(settings)
    try:
        if args.action == "up":
            stack.up()
        elif args.action == "down":
            stack.down()
    except StackError as error:
        raise CliError(str(error)) from error
    for name, state in stack.status().items():
        print(f"{name:10} {state}")
    if args.action == "up":
        print(f"data under {settings.stack.dir.resolve()}; stop with: ftel stack down")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "stack",
        help="start, stop or inspect the local Mosquitto and InfluxDB",
        description="Runs Mosquitto and InfluxDB from Debian's packages (installed with apt-get when root and "
        "missing) with the project's configuration, data under FTEL_STACK__DIR, on the ports of FTEL_MQTT__PORT "
        "and FTEL_INFLUX__URL; creates the database and retention policy.",
    )
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.set_defaults(handler=_stack)
