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
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live

from ftel import runstate
from ftel.errors import CliError
from ftel.live import LiveSnapshot, read_snapshot, render
from ftel.security.credentials import with_identity
from ftel.security.identities import SUPERVISOR
from ftel.settings import Settings
from ftel.stack.cli import stack_from_settings
from ftel.storage.query import InfluxQuery

if TYPE_CHECKING:
    from simulators.session import SimulationRun

console = Console()
REFRESH_S = 3.0
PROCESS_READY_TIMEOUT_S = 60.0


def _start(name: str, args: list[str], log: Path, *, ready: str, extra_env: dict[str, str]) -> subprocess.Popen[bytes]:
    """One `ftel` process of the pipeline, logging to ``log``; waits until it logs ``ready``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ftel.cli", *args],
            env={**os.environ, **extra_env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + PROCESS_READY_TIMEOUT_S
    while ready not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise CliError(f"the {name} did not start; see {log}")
        time.sleep(0.1)
    return process


def _simulation(args: argparse.Namespace, settings: Settings) -> tuple[SimulationRun, str, str]:
    """The simulated plant to run: the last run's, continued from where it stopped, or a new history."""
    from simulators.cli import parse_duration
    from simulators.clock import SimClock, wall_ms
    from simulators.session import SimulationRun, plant_from_settings

    plant = plant_from_settings(settings)
    speedup = args.speedup or settings.simulation.speedup
    now = wall_ms()
    fingerprint = runstate.plant_fingerprint(plant.model_dump_json())
    saved = runstate.load(settings.stack.dir)
    previous = None if args.fresh else runstate.continues(saved, plant=fingerprint, now_ms=now)
    if previous is not None:
        # The same plant carries on from where the last run stopped: the gateways resume from their
        # checkpoints and catch up the gap at the speed-up (their simulated machines tell it exactly).
        start, clock_from = previous.start_ms, previous.stopped_ms
        opening = f"continuing the plant from {(now - clock_from) // 60000} min ago at {speedup:g}×, then live"
    else:
        window_ms = settings.simulation.window_s * 1000
        history_ms = parse_duration(args.history)
        start = now - history_ms
        start -= start % window_ms
        clock_from = start
        opening = f"{history_ms // 60000} min of history at {speedup:g}×, then live"
    runstate.save(settings.stack.dir, runstate.RunState(fingerprint, start, clock_from))
    return SimulationRun(plant, start, None, SimClock(clock_from, speedup, now)), fingerprint, opening


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.session import run_gateways

    logging.getLogger("gateway").setLevel(logging.WARNING)  # the live view says it better
    stack = stack_from_settings(settings)
    with console.status("starting Mosquitto and InfluxDB…"):
        stack.up()
    logs = settings.stack.dir / "logs"
    # Health every second, so each refresh of the live view sees a fresh pipeline rate.
    worker = _start(
        "ingest worker",
        ["ingest"],
        logs / "ingest.log",
        ready="subscribed",
        extra_env={"FTEL_INGEST__HEALTH_INTERVAL_S": "1"},
    )
    # The alert worker also judges when a vanished gateway died (its machines are OFFLINE from then).
    alerts = _start(
        "alert worker",
        ["alerts", "run", "--state-dir", str(settings.stack.dir / "alerts")],
        logs / "alerts.log",
        ready="subscribed",
        extra_env={},
    )
    run, fingerprint, opening = _simulation(args, settings)
    plant, start = run.plant, run.start_ms
    stop = threading.Event()
    gateways = threading.Thread(target=run_gateways, args=(run, settings, stop), name="gateways", daemon=True)
    gateways.start()
    header = (
        f"ftel run — {plant.machine_count} simulated machines in {len(plant.workshops)} workshops, {opening}. "
        f"Logs: {logs}"
    )
    # The live view only reads: the read-only supervisor. The workers and each gateway find their own identity
    # (ingest-1, alerts, the gateway ids) in the credentials file that `stack.up()` completed for this plant.
    query = InfluxQuery(with_identity(settings, SUPERVISOR).influx)
    previous_snap: LiveSnapshot | None = None
    deadline = time.monotonic() + args.seconds if args.seconds else None
    try:
        with Live(console=console, refresh_per_second=1, screen=False) as live:
            while deadline is None or time.monotonic() < deadline:
                snap = read_snapshot(query, run.clock.now_ms())
                live.update(render(snap, previous_snap, REFRESH_S, header))
                previous_snap = snap
                time.sleep(REFRESH_S)
    except KeyboardInterrupt:
        pass
    finally:
        with console.status("stopping gateways, workers and services…"):
            stop.set()
            gateways.join(timeout=120)
            runstate.save(settings.stack.dir, runstate.RunState(fingerprint, start, run.clock.now_ms()))
            for process in (worker, alerts):
                process.terminate()
                process.wait(timeout=30)
            if not args.keep_stack:
                stack.down()
    console.print(
        "stopped; `make run` again continues this plant where it stopped."
        + ("" if not args.keep_stack else " Services left running: ftel stack down")
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="the whole pipeline with a simulated plant, live (the README's main command)",
        description="Starts Mosquitto and InfluxDB, an ingest worker, the alert worker and the default plant's "
        "gateways; fills --history of simulated time at --speedup, then runs at real time; shows a live view read "
        "back from InfluxDB: machines by state per workshop, utilisation, stops by reason, pipeline rate. Run it "
        "again and the same plant continues from where it stopped (its gateways resume from their checkpoints).",
    )
    parser.add_argument("--history", default="1h", help="simulated history to fill first (default 1h)")
    parser.add_argument("--speedup", type=float, help="speed while filling history (FTEL_SIMULATION__SPEEDUP)")
    parser.add_argument("--seconds", type=float, help="stop by itself after this many wall seconds")
    parser.add_argument("--keep-stack", action="store_true", help="leave Mosquitto and InfluxDB running")
    parser.add_argument(
        "--fresh", action="store_true", help="start a new plant history instead of continuing the last run's"
    )
    parser.set_defaults(handler=_run)
