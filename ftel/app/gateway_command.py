"""`ftel gateway`: the composition root of one workshop's edge gateway.

- ``--config FILE``: the machines of a gateway configuration (docs/gateway.md), read over Modbus TCP or OPC UA
  (gateway/drivers), with ``simulated`` entries built here from simulators/. With a ``clock`` in the file the
  gateway reads on that simulated plant clock.
- ``--workshop ID``: a simulated workshop of a plant file, as `ftel simulate run` runs it (tests and load).
- ``probe --config FILE``: read each machine's signals once and print the state they give.
- ``discover --opcua URL``: browse equipment and print a draft gateway file (gateway/discover/); reads only.
- ``discover --modbus TARGET``: read registers of given units a few times, show which change, draft a file.

The gateway package never imports the simulators; this module wires the two.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError

from ftel.app.simulation import add_run_options, print_progress, simulation_run, write_run_ledger
from ftel.errors import CliError
from ftel.settings import Settings
from ftel.signals import stop_on_signals
from gateway.cli import probe, run_configured
from gateway.config import OpcUaSecurity, load_gateway_config
from simulators.clock import SimClock, wall_ms
from simulators.driver import configured_driver


def _configured(path: Path, settings: Settings) -> int:
    config = load_gateway_config(path)
    c = config.clock
    clock = SimClock(c.start_ms, c.speedup, c.anchor_ms) if c else None
    run_configured(
        config,
        settings,
        stop_on_signals(),
        now_ms=clock.now_ms if clock else wall_ms,
        time_scale=c.speedup if c else 1.0,
        end_ms=c.end_ms if c else None,
        simulated=configured_driver,
    )
    return 0


def _simulated(args: argparse.Namespace, settings: Settings) -> int:
    run = simulation_run(args, settings)
    gateway = run.gateway(settings, args.workshop)
    stop = stop_on_signals()
    final = gateway.run(
        stop,
        end_ms=run.end_ms,
        first_read_ms=run.first_read_ms,
        on_progress=lambda p: print_progress(args.workshop, p),
    )
    print_progress(args.workshop, final)
    if args.ledger:
        write_run_ledger(run, settings, args.ledger, [args.workshop])
    return 0


def _opcua_security(args: argparse.Namespace) -> OpcUaSecurity:
    user: dict[str, object] | None = None
    if args.username:
        secret = {"env": args.password_env} if args.password_env else {"file": args.password_file}
        user = {"username": args.username, "password": secret}
    elif args.user_certificate:
        user = {"certificate": args.user_certificate, "private_key": args.user_key}
    try:
        return OpcUaSecurity.model_validate({"policy": args.policy, "mode": args.mode, "pki": args.pki, "user": user})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'security'}: {e['msg']}" for e in error.errors())
        raise CliError(f"OPC UA security options: {problems}") from None


def _discover(args: argparse.Namespace) -> int:
    if args.opcua:
        from gateway.discover.opcua import discover_command, security_entry
        from gateway.discover.opcua_draft import DraftOptions

        security = _opcua_security(args)
        options = DraftOptions(
            args.opcua,
            workshop=args.draft_workshop,
            gateway_id=args.draft_gateway_id,
            security=security_entry(security),
        )
        return discover_command(args.opcua, security, options, out=args.out, timeout_s=args.timeout_s)
    if args.modbus:
        return _discover_modbus(args)
    raise CliError("say what to discover: --opcua URL (an OPC UA endpoint) or --modbus TARGET (a Modbus address)")


def _discover_modbus(args: argparse.Namespace) -> int:
    from gateway.config import Parity, Table
    from gateway.discover.modbus import Target, discover_command

    try:
        target = Target.parse(args.modbus, baudrate=args.baudrate, parity=Parity(args.parity), stop_bits=args.stop_bits)
        tables = [Table(t) for t in args.table or ["holding"]]
    except ValueError as error:
        raise CliError(f"--modbus {args.modbus}: {error}") from None
    return discover_command(
        target,
        args.unit or [1],
        tables,
        start=args.start,
        count=args.count,
        reads=args.reads,
        every_s=args.every_s,
        timeout_s=args.timeout_s,
        workshop=args.draft_workshop,
        gateway_id=args.draft_gateway_id,
        out=args.out,
        command=f"ftel gateway discover --modbus {args.modbus}",
    )


def _gateway(args: argparse.Namespace, settings: Settings) -> int:
    if args.gateway_action == "probe":
        return probe(load_gateway_config(args.probe_config), args.machine)
    if args.gateway_action == "discover":
        return _discover(args)
    if args.gateway_config and args.workshop:
        raise CliError("either --config FILE (the machines of a gateway configuration) or --workshop ID, not both")
    if args.gateway_config:
        return _configured(args.gateway_config, settings)
    if args.workshop:
        return _simulated(args, settings)
    raise CliError("say which machines: --config FILE (a gateway configuration) or --workshop ID (simulated)")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "gateway",
        help="run one workshop's edge gateway (real machines from --config, or a simulated --workshop)",
        description="Reads every machine of one workshop through its driver (Modbus TCP, OPC UA, or simulated), "
        "detects state changes, computes exact durations and per-window state times at the edge, and publishes "
        "them with QoS 1: birth + last will on gateway/<id>/status, heartbeats, a spool while the broker is away. "
        "docs/gateway.md explains the configuration file.",
    )
    parser.add_argument(
        "--config", dest="gateway_config", type=Path, help="gateway configuration (YAML): models and machines"
    )
    parser.add_argument("--workshop", help="a simulated workshop: its id in the plant file")
    add_run_options(parser, duration_default=None)
    actions = parser.add_subparsers(dest="gateway_action", metavar="ACTION")
    check = actions.add_parser(
        "probe",
        help="read each machine's signals once and print the state they give (check a new machine's wiring)",
    )
    check.add_argument("--config", dest="probe_config", type=Path, required=True, help="gateway configuration")
    check.add_argument("--machine", action="append", help="only this machine (repeat for more)")
    parser.set_defaults(handler=_gateway, gateway_action=None)
    discover = actions.add_parser(
        "discover",
        help="browse equipment and print a draft gateway file that probe then checks (reads only)",
        description="OPC UA: lists the machines under Objects/Machines, their identification and building blocks, "
        "and the variables under each with data types and values (candidates for counters, fault codes, speed, "
        "temperature), then prints a draft gateway file. Only reads: nothing is written to a device.",
    )
    discover.add_argument("--opcua", metavar="URL", help="an OPC UA endpoint, opc.tcp://host:port/path")
    discover.add_argument("--out", type=Path, help="write the draft here instead of printing it")
    discover.add_argument("--workshop", dest="draft_workshop", default="workshop-1", help="the draft's workshop id")
    discover.add_argument("--gateway-id", dest="draft_gateway_id", default="gw-1", help="the draft's gateway id")
    discover.add_argument("--timeout-s", type=float, default=10.0, help="one request's time limit (default 10)")
    ua = discover.add_argument_group("OPC UA security (as the driver's security: docs/gateway.md)")
    ua.add_argument(
        "--policy", default="None", help="None, Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss"
    )
    ua.add_argument("--mode", default="None", help="None, Sign or SignAndEncrypt")
    ua.add_argument("--pki", type=Path, help="the directory `ftel auth opcua init` made")
    ua.add_argument("--username", help="a user name (its password from --password-env or --password-file)")
    ua.add_argument("--password-env", help="the environment variable that holds the password")
    ua.add_argument("--password-file", type=Path, help="a file that holds the password")
    ua.add_argument("--user-certificate", type=Path, help="an X.509 user certificate (with --user-key)")
    ua.add_argument("--user-key", type=Path, help="the user certificate's private key")
    mb = discover.add_argument_group("Modbus (reads only: functions 1-4)")
    mb.add_argument(
        "--modbus", metavar="TARGET", help="host[:port] (TCP, or a TCP→RTU gateway) or a serial device (RTU)"
    )
    mb.add_argument("--unit", type=int, action="append", help="a unit id to read (repeat; default 1)")
    mb.add_argument(
        "--table", action="append", choices=["holding", "input", "coil", "discrete"], help="repeat; default holding"
    )
    mb.add_argument("--start", type=int, default=0, help="first address (0-based, as on the wire; default 0)")
    mb.add_argument("--count", type=int, default=20, help="registers or bits from there (default 20, at most 125)")
    mb.add_argument("--reads", type=int, default=5, help="how many times to read them (default 5)")
    mb.add_argument("--every-s", type=float, default=1.0, help="seconds between reads (default 1)")
    mb.add_argument("--baudrate", type=int, default=19_200, help="serial: baud rate (default 19200)")
    mb.add_argument("--parity", default="even", choices=["none", "even", "odd"], help="serial: parity (even)")
    mb.add_argument("--stop-bits", type=int, default=1, choices=[1, 2], help="serial: stop bits (default 1)")
