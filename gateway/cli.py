"""`ftel gateway`: one workshop's edge gateway, driving its simulated machines."""

from __future__ import annotations

import argparse

from ftel.settings import Settings
from simulators.cli import add_run_options, print_progress, simulation_run, stop_on_signals, write_run_ledger


def _gateway(args: argparse.Namespace, settings: Settings) -> int:
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


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "gateway",
        help="run one workshop's edge gateway (simulated driver)",
        description="Reads every machine of one workshop through its driver (the simulated one for now), "
        "detects state changes, computes exact durations and per-window state times at the edge, and publishes "
        "them with QoS 1: birth + last will on gateway/<id>/status, heartbeats, a spool while the broker is away.",
    )
    parser.add_argument("--workshop", required=True, help="workshop id from the plant file")
    add_run_options(parser, duration_default=None)
    parser.set_defaults(handler=_gateway)
