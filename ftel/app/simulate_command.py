"""`ftel simulate`: run a simulated plant through real gateways, generate plant files, write ledgers, backfill."""

from __future__ import annotations

import argparse
from pathlib import Path

from ftel.app.simulation import (
    add_run_options,
    console,
    parse_duration,
    print_progress,
    simulated_operators,
    simulated_orders,
    simulation_run,
    write_run_ledger,
)
from ftel.plant.layout import dump_plant
from ftel.plant.orders import OrderBook
from ftel.settings import Settings
from ftel.signals import stop_on_signals
from simulators.backfill import backfill
from simulators.clock import wall_ms
from simulators.plant import generate_plant
from simulators.session import SimulationRun, run_gateways


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "generate":
        plant = generate_plant(args.machines, site=settings.site, per_workshop=args.per_workshop)
        Path(args.out).write_text(dump_plant(plant))
        console.print(f"plant with {plant.machine_count} machines in {len(plant.workshops)} workshops → {args.out}")
        return 0
    run = simulation_run(args, settings)
    if args.action == "ledger":
        if run.end_ms is None:
            from ftel.errors import CliError

            raise CliError("ledger needs --duration (and usually --start-ms)")
        write_run_ledger(run, settings, args.ledger or Path("ledger.jsonl"), None)
        return 0
    if args.action == "serve":
        return _serve(args, run, simulated_orders(settings))
    if args.action == "backfill":
        end = run.end_ms or wall_ms()
        # Written like ingest writes it: as an ingest identity, whose InfluxDB user may only write.
        from ftel.security.credentials import with_identity
        from ftel.security.identities import ingest_identity

        influx = with_identity(settings, ingest_identity(1)).influx
        with console.status("backfilling…") as status:
            points = backfill(
                run.plant,
                influx,
                start_ms=run.start_ms,
                end_ms=end,
                window_ms=settings.simulation.window_s * 1000,
                telemetry_interval_ms=settings.simulation.telemetry_interval_s * 1000,
                on_progress=lambda done, total: status.update(f"backfilling machine {done}/{total}"),
                calendar=run.calendar,
                orders=simulated_orders(settings),
                operators=simulated_operators(settings, run.calendar),
            )
        console.print(f"wrote {points} points for {run.plant.machine_count} machines into {settings.influx.database}")
        return 0
    stop = stop_on_signals()
    console.print(
        f"simulating {run.plant.machine_count} machines in {len(run.plant.workshops)} workshops at "
        f"{run.clock.speedup:g}× → MQTT {settings.mqtt.host}:{settings.mqtt.port}"
    )
    chosen = args.workshops.split(",") if args.workshops else None
    for workshop in chosen or []:
        run.plant.workshop(workshop)  # an unknown one is named with the known ones
    results = run_gateways(run, settings, stop, workshops=chosen, on_progress=print_progress)
    for workshop, final in results.items():
        print_progress(workshop, final)
    if args.ledger:
        write_run_ledger(run, settings, args.ledger, None)
    return 0


def _serve(args: argparse.Namespace, run: SimulationRun, orders: OrderBook) -> int:
    import asyncio

    from simulators.serve.faults import Faults, load_faults
    from simulators.serve.run import PollSettings, Served, ServeOptions, serve

    workshop = args.workshop or run.plant.workshops[0].id
    run.plant.workshop(workshop)  # a KeyError names the known ones
    options = ServeOptions(
        protocol=args.protocol,
        plant=run.plant,
        workshop=workshop,
        start_ms=run.start_ms,
        end_ms=run.end_ms,
        clock=run.clock,
        host=args.host,
        port=args.port,
        faults=load_faults(args.faults) if args.faults else Faults(),
        counter_start=args.counter_start,
        poll=PollSettings(interval_s=args.poll_interval_s, timeout_s=args.timeout_s, offline_after=args.offline_after),
        overrun_ms=parse_duration(args.overrun),
        gateway_config=args.gateway_config,
        orders=orders,
    )

    def ready(served: Served) -> None:
        for machine_id, address in served.addresses.items():
            console.print(f"{machine_id}: {' '.join(f'{k}={v}' for k, v in address.items())}")
        written = f"; gateway configuration → {args.gateway_config}" if args.gateway_config else ""
        console.print(
            f"serving {len(served.controllers)} machines of {workshop} over {args.protocol} at "
            f"{run.clock.speedup:g}×{written}; ready"
        )

    asyncio.run(serve(options, on_ready=ready))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="run a simulated plant through its gateways; generate plants; write ledgers; backfill",
        description="Seeded, reproducible simulated workshops (carding, spinning, flat knitting). `run` drives "
        "every workshop's gateway to MQTT; `generate` writes a plant of N machines; `ledger` writes the exact "
        "ground truth for a period; `backfill` writes a past period straight into InfluxDB.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="simulate the plant live through its gateways (load tests)")
    add_run_options(run, duration_default=None)
    run.add_argument(
        "--workshops",
        help="only these workshops' gateways, comma-separated (run a county's gateways in several processes "
        "sharing one plant clock: give them the same --start-ms and --anchor-ms)",
    )
    generate = actions.add_parser("generate", help="write a plant file of N machines (county-scale load tests)")
    generate.add_argument("--machines", type=int, required=True)
    generate.add_argument("--per-workshop", type=int, default=500, help="machines per workshop (one gateway each)")
    generate.add_argument("--out", type=Path, default=Path("plant.yaml"))
    ledger = actions.add_parser("ledger", help="write the ground-truth ledger for a period, without running it")
    add_run_options(ledger, duration_default=None)
    serve = actions.add_parser(
        "serve",
        help="serve a workshop's simulated machines as Modbus TCP or OPC UA controllers on loopback",
        description="Each machine of the workshop as a real controller: its own Modbus TCP server (a port per "
        "machine), or all of them on one OPC UA server with the OPC 40001-1 Machinery building blocks. Values "
        "follow the seeded models on the plant's clock; --gateway-config writes the configuration that reads them "
        "(`ftel gateway --config FILE`). Runs until Ctrl-C; after --duration the machines hold still.",
    )
    add_run_options(serve, duration_default=None)
    serve.add_argument("--protocol", choices=("modbus", "opcua"), required=True)
    serve.add_argument("--workshop", help="workshop id (default: the plant's first)")
    serve.add_argument("--host", default="127.0.0.1", help="address to serve on (loopback by default)")
    serve.add_argument("--port", type=int, default=0, help="first port (Modbus: one per machine); 0: free ports")
    serve.add_argument("--gateway-config", type=Path, help="write the gateway configuration for these machines here")
    serve.add_argument("--poll-interval-s", type=float, default=1.0, help="poll interval the configuration asks")
    serve.add_argument("--timeout-s", type=float, help="request time limit it asks (default: the poll interval)")
    serve.add_argument("--offline-after", type=int, default=2, help="failed polls that make a machine OFFLINE")
    serve.add_argument("--overrun", default="60s", help="how long the gateway reads past --duration (default 60s)")
    serve.add_argument("--faults", type=Path, help="controller faults to inject (YAML: silent, restart, garble)")
    serve.add_argument("--counter-start", type=int, default=0, help="counters start here (e.g. 65530: they wrap)")
    fill = actions.add_parser("backfill", help="simulate a past period straight into InfluxDB (no MQTT)")
    add_run_options(fill, duration_default="8h")
    parser.set_defaults(handler=_simulate)
