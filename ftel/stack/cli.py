"""`ftel stack up|down|status`: the local Mosquitto and InfluxDB, configured from settings."""

from __future__ import annotations

import argparse
from urllib.parse import urlparse

from ftel.settings import Settings
from ftel.stack.services import LocalStack, StackError, free_port


def stack_from_settings(settings: Settings) -> LocalStack:
    """The local stack these settings describe, with an identity for every gateway of the settings' plant."""
    from ftel.security.cli import plant_gateways

    url = urlparse(settings.influx.url)
    influx_port = url.port or 8086
    if settings.stack.tls and url.scheme != "https":
        raise StackError(
            f"with FTEL_STACK__TLS InfluxDB serves HTTPS only: set FTEL_INFLUX__URL=https://127.0.0.1:{influx_port} "
            f"and FTEL_INFLUX__CA_FILE={settings.stack.dir / 'tls' / 'ca.pem'}"
        )
    if settings.mqtt.tls:
        raise StackError(
            "ftel stack serves plain MQTT on loopback at FTEL_MQTT__PORT and TLS at FTEL_STACK__MQTT_TLS_PORT: "
            "run `ftel stack` without FTEL_MQTT__TLS (TLS clients set it, with FTEL_MQTT__PORT the TLS port)"
        )
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
        gateways=plant_gateways(settings),
        ingest_workers=settings.auth.ingest_workers,
        credentials_file=settings.credentials_file,
        tls=settings.stack.tls,
        mqtt_tls_port=settings.stack.mqtt_tls_port,
    )


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
