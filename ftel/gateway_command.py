"""`ftel gateway`: the composition root of one workshop's edge gateway.

- ``--config FILE``: the machines of a gateway configuration (docs/gateway.md), read over Modbus TCP or OPC UA
  (gateway/drivers), with ``simulated`` entries built here from simulators/. With a ``clock`` in the file the
  gateway reads on that simulated plant clock.
- ``--workshop ID``: a simulated workshop of a plant file, as `ftel simulate run` runs it (tests and load).
- ``probe --config FILE``: read each machine's signals once and print the state they give.

The gateway package never imports the simulators; this module wires the two.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ftel.errors import CliError
from ftel.settings import Settings
from gateway.cli import probe, run_configured
from gateway.config import load_gateway_config
from simulators.cli import add_run_options, print_progress, simulation_run, stop_on_signals, write_run_ledger
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


def _gateway(args: argparse.Namespace, settings: Settings) -> int:
    if args.gateway_action == "probe":
        return probe(load_gateway_config(args.probe_config), args.machine)
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
