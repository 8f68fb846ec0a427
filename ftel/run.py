"""`ftel run`: the whole pipeline with a simulated plant, live: stack, ingest worker, gateways, live view."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live

from ftel.live import LiveSnapshot, read_snapshot, render
from ftel.security.credentials import with_identity
from ftel.security.identities import SUPERVISOR
from ftel.settings import Settings
from ftel.stack.cli import stack_from_settings
from ftel.storage.query import InfluxQuery

console = Console()
REFRESH_S = 3.0
WORKER_READY_TIMEOUT_S = 60.0


def _start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ftel.cli", "ingest"],
            # Health every second, so each refresh of the live view sees a fresh pipeline rate.
            env={**os.environ, "FTEL_INGEST__HEALTH_INTERVAL_S": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while "subscribed" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            from ftel.errors import CliError

            raise CliError(f"the ingest worker did not start; see {log}")
        time.sleep(0.1)
    return process


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.cli import parse_duration
    from simulators.clock import SimClock, wall_ms
    from simulators.session import SimulationRun, plant_from_settings, run_gateways

    logging.getLogger("gateway").setLevel(logging.WARNING)  # the live view says it better
    stack = stack_from_settings(settings)
    with console.status("starting Mosquitto and InfluxDB…"):
        stack.up()
    logs = settings.stack.dir / "logs"
    worker = _start_worker(settings, logs / "ingest.log")
    plant = plant_from_settings(settings)
    window_ms = settings.simulation.window_s * 1000
    history_ms = parse_duration(args.history)
    start = wall_ms() - history_ms
    start -= start % window_ms
    speedup = args.speedup or settings.simulation.speedup
    run = SimulationRun(plant, start, None, SimClock(start, speedup, wall_ms()))
    stop = threading.Event()
    gateways = threading.Thread(target=run_gateways, args=(run, settings, stop), name="gateways", daemon=True)
    gateways.start()
    header = (
        f"ftel run — {plant.machine_count} simulated machines in {len(plant.workshops)} workshops, "
        f"{history_ms // 60000} min of history at {speedup:g}×, then live.  Logs: {logs}"
    )
    # The live view only reads: the read-only supervisor. The worker and each gateway find their own identity
    # (ingest-1, the gateway ids) in the credentials file that `stack.up()` completed for this plant.
    query = InfluxQuery(with_identity(settings, SUPERVISOR).influx)
    previous: LiveSnapshot | None = None
    deadline = time.monotonic() + args.seconds if args.seconds else None
    try:
        with Live(console=console, refresh_per_second=1, screen=False) as live:
            while deadline is None or time.monotonic() < deadline:
                snap = read_snapshot(query, run.clock.now_ms())
                live.update(render(snap, previous, REFRESH_S, header))
                previous = snap
                time.sleep(REFRESH_S)
    except KeyboardInterrupt:
        pass
    finally:
        with console.status("stopping gateways, ingest worker and services…"):
            stop.set()
            gateways.join(timeout=60)
            worker.terminate()
            worker.wait(timeout=30)
            if not args.keep_stack:
                stack.down()
    console.print("stopped." + ("" if not args.keep_stack else " Services left running: ftel stack down"))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="the whole pipeline with a simulated plant, live (the README's main command)",
        description="Starts Mosquitto and InfluxDB, an ingest worker and the default plant's gateways; fills "
        "--history of simulated time at --speedup, then runs at real time; shows a live view read back from "
        "InfluxDB: machines by state per workshop, utilisation, stops by reason, pipeline rate.",
    )
    parser.add_argument("--history", default="1h", help="simulated history to fill first (default 1h)")
    parser.add_argument("--speedup", type=float, help="speed while filling history (FTEL_SIMULATION__SPEEDUP)")
    parser.add_argument("--seconds", type=float, help="stop by itself after this many wall seconds")
    parser.add_argument("--keep-stack", action="store_true", help="leave Mosquitto and InfluxDB running")
    parser.set_defaults(handler=_run)
