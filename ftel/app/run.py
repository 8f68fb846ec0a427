"""`ftel run`: the whole pipeline with a simulated plant, live: stack, ingest worker, gateways, live view."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live

from ftel.app import runstate
from ftel.app.live import LiveSnapshot, read_snapshot, render
from ftel.children import Interrupts, describe_exit, spawn, stop_summary
from ftel.errors import CliError
from ftel.ready import Readiness, ready_env, wait_ready
from ftel.security.credentials import with_identity
from ftel.security.identities import SUPERVISOR
from ftel.settings import Settings
from ftel.stack import LocalStack, stack_from_settings
from ftel.storage.query import InfluxQuery

if TYPE_CHECKING:
    from gateway.runner import Gateway
    from simulators.session import SimulationRun

console = Console()
REFRESH_S = 3.0
PROCESS_READY_TIMEOUT_S = 60.0
# A worker asked to stop gets this long to write and confirm what it holds (its own drain takes at most 30 s).
PROCESS_STOP_TIMEOUT_S = 60.0
# How often a step of the stop says again what it is waiting for.
STOP_POLL_S = 0.2


def _start(
    name: str, args: list[str], log: Path, *, extra_env: dict[str, str], interrupts: Interrupts
) -> subprocess.Popen[bytes]:
    """One `ftel` process of the pipeline, logging to ``log``, out of the terminal's reach (this command stops
    it, in order); waits until it says it is ready (ftel/ready.py: its subscriptions are granted) or a stop is
    asked for."""
    log.parent.mkdir(parents=True, exist_ok=True)
    ready = log.with_suffix(".ready")
    with log.open("ab") as out:
        process = spawn(args, env={**os.environ, **extra_env, **ready_env(ready)}, stdout=out, stderr=subprocess.STDOUT)
    readiness = wait_ready(ready, process, timeout_s=PROCESS_READY_TIMEOUT_S, stop=interrupts.stop)
    if readiness in (Readiness.EXITED, Readiness.TIMED_OUT):
        raise CliError(f"the {name} did not start ({readiness}); see {log}")
    return process


def _simulation(args: argparse.Namespace, settings: Settings) -> tuple[SimulationRun, str, str]:
    """The simulated plant to run: the last run's, continued from where it stopped, or a new history."""
    from ftel.app.simulation import parse_duration
    from ftel.plant.calendar import load_calendar
    from simulators.clock import SimClock, wall_ms
    from simulators.session import SimulationRun, plant_from_settings

    plant = plant_from_settings(settings)
    # With the site's calendar (FTEL_CALENDAR) machines work only in its planned time.
    calendar = load_calendar(settings.calendar) if settings.calendar else None
    speedup = args.speedup or settings.simulation.speedup
    now = wall_ms()
    # A different calendar is a different history: the plant is not continued across a calendar change.
    fingerprint = runstate.plant_fingerprint(plant.model_dump_json() + (calendar.model_dump_json() if calendar else ""))
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
    run = SimulationRun(plant, start, None, SimClock(clock_from, speedup, now), calendar=calendar)
    return run, fingerprint, opening


@dataclass
class _Pipeline:
    """What `ftel run` started, so that it stops exactly that, in the order the data flows."""

    stack: LocalStack
    interrupts: Interrupts
    ingest: subprocess.Popen[bytes] | None = None
    alerts: subprocess.Popen[bytes] | None = None
    settle: subprocess.Popen[bytes] | None = None
    gateways: list[Gateway] = field(default_factory=list)
    gateway_thread: threading.Thread | None = None
    gateway_stop: threading.Event = field(default_factory=threading.Event)
    services_up: bool = False
    run: SimulationRun | None = None
    stopped_ms: int = 0  # plant time when the gateways stopped: where the next run continues


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.session import run_gateways

    logging.getLogger("gateway").setLevel(logging.WARNING)  # the live view says it better
    interrupts = Interrupts()
    pipeline = _Pipeline(stack_from_settings(settings), interrupts)
    logs = settings.stack.dir / "logs"
    fingerprint = ""
    try:
        with console.status("starting Mosquitto and InfluxDB…"):
            pipeline.services_up = True  # from the first service on, there is something to stop
            pipeline.stack.up()
        if not interrupts.stop.is_set():
            # Health every second, so each refresh of the live view sees a fresh pipeline rate.
            pipeline.ingest = _start(
                "ingest worker",
                ["ingest"],
                logs / "ingest.log",
                extra_env={"FTEL_INGEST__HEALTH_INTERVAL_S": "1"},
                interrupts=interrupts,
            )
        if not interrupts.stop.is_set():
            # The alert worker also judges when a vanished gateway died (its machines are OFFLINE from then).
            pipeline.alerts = _start(
                "alert worker",
                ["alerts", "run", "--state-dir", str(settings.stack.dir / "alerts")],
                logs / "alerts.log",
                extra_env={},
                interrupts=interrupts,
            )
        if not interrupts.stop.is_set():
            # The boards' planned time, classified reasons and orders (dashboards/settle.py); nothing to wait for.
            with (logs / "settle.log").open("ab") as out:
                every = f"{settings.settle.every_s:g}"
                pipeline.settle = spawn(["settle", "--every", every], stdout=out, stderr=subprocess.STDOUT)
        if not interrupts.stop.is_set():
            run, fingerprint, opening = _simulation(args, settings)
            pipeline.run = run
            pipeline.gateway_thread = threading.Thread(
                target=run_gateways,
                args=(run, settings, pipeline.gateway_stop),
                kwargs={"on_built": pipeline.gateways.extend},
                name="gateways",
                daemon=True,
            )
            pipeline.gateway_thread.start()
            header = (
                f"ftel run — {run.plant.machine_count} simulated machines in {len(run.plant.workshops)} workshops, "
                f"{opening}. Logs: {logs}"
            )
            _watch(run, settings, header, seconds=args.seconds, stop=interrupts.stop)
    finally:
        stopped = _stop(pipeline, keep_stack=args.keep_stack, logs=logs)
        if pipeline.run is not None:
            saved = runstate.RunState(fingerprint, pipeline.run.start_ms, pipeline.stopped_ms)
            runstate.save(settings.stack.dir, saved)
        interrupts.restore()
    console.print(stopped, highlight=False)
    return 0


def _watch(
    run: SimulationRun, settings: Settings, header: str, *, seconds: float | None, stop: threading.Event
) -> None:
    """The live view until ``stop`` (Ctrl-C) or ``seconds``."""
    # The live view only reads: the read-only supervisor. The workers and each gateway find their own identity
    # (ingest-1, alerts, the gateway ids) in the credentials file that `stack.up()` completed for this plant.
    query = InfluxQuery(with_identity(settings, SUPERVISOR).influx)
    previous: LiveSnapshot | None = None
    deadline = time.monotonic() + seconds if seconds else None
    with Live(console=console, refresh_per_second=1, screen=False) as live:
        while deadline is None or time.monotonic() < deadline:
            snap = read_snapshot(query, run.clock.now_ms())
            live.update(render(snap, previous, REFRESH_S, header))
            previous = snap
            if stop.wait(REFRESH_S):
                return


def _stop(pipeline: _Pipeline, *, keep_stack: bool, logs: Path) -> str:
    """Stop what runs in the order the data flows, saying what each step waits for; return the summary."""
    began = time.monotonic()
    abort = pipeline.interrupts.abort
    logging.getLogger("gateway").setLevel(logging.ERROR)  # what is left in a spool, the summary says
    console.print("stopping, in the order the data flows (Ctrl-C again stops at once)…", highlight=False)
    with console.status("") as status:
        _stop_gateways(pipeline, status.update)
        if pipeline.ingest is not None:
            holds = "writing and confirming what it holds"
            _stop_process("ingest worker", pipeline.ingest, holds, abort, status.update)
        if pipeline.alerts is not None:
            _stop_process("alert worker", pipeline.alerts, "saving its state", abort, status.update)
        if pipeline.settle is not None:
            _stop_process("settler", pipeline.settle, "finishing its settle", abort, status.update)
        if pipeline.services_up and not keep_stack:
            status.update("services: stopping Mosquitto and InfluxDB")
            step = time.monotonic()
            pipeline.stack.down()
            console.print(f"  services: Mosquitto and InfluxDB stopped ({time.monotonic() - step:.1f} s)")
    left = {g.origin.gateway_id: (g.unconfirmed, g.spool.path) for g in pipeline.gateways if g.unconfirmed}
    line, warning = stop_summary(time.monotonic() - began, left, next_run="the next `make run`")
    kept = " Services left running: ftel stack down" if keep_stack else ""
    if warning:
        return f"[yellow]{line}.{kept}[/yellow] Logs: {logs}"
    return f"{line}; `make run` again continues this plant where it stopped.{kept}"


def _stop_gateways(pipeline: _Pipeline, say: Callable[[str], None]) -> None:
    """Gateways first: they close their windows and drain to a living ingest."""
    thread = pipeline.gateway_thread
    if thread is None:
        return
    began = time.monotonic()
    pipeline.gateway_stop.set()
    why = ""
    while thread.is_alive():
        ingest = pipeline.ingest
        if not why and pipeline.interrupts.abort.is_set():
            why = "stopped at once"
        elif not why and ingest is not None and ingest.poll() is not None:
            why = f"the ingest worker {describe_exit(ingest.returncode)}, nothing can confirm"
        if why:
            for gateway in pipeline.gateways:
                gateway.abandon_drain()
        waiting = sum(g.unconfirmed for g in pipeline.gateways)
        say(f"gateways: {waiting:,} messages waiting for confirmation by ingest" + (f" ({why})" if why else ""))
        thread.join(STOP_POLL_S)
    if pipeline.run is not None:
        pipeline.stopped_ms = pipeline.run.clock.now_ms()
    waiting = sum(g.unconfirmed for g in pipeline.gateways)
    outcome = "all confirmed" if not waiting else f"{waiting:,} messages unconfirmed" + (f", {why}" if why else "")
    console.print(f"  gateways: stopped, {outcome} ({time.monotonic() - began:.1f} s)", highlight=False)


def _stop_process(
    name: str, process: subprocess.Popen[bytes], waiting_for: str, abort: threading.Event, say: Callable[[str], None]
) -> None:
    """SIGTERM, then wait while it finishes its work; at once (SIGKILL) on a second Ctrl-C or past the timeout."""
    if process.poll() is not None:
        ended = describe_exit(process.returncode)
        console.print(f"  [yellow]{name}: had {ended} before the stop; see its log[/yellow]")
        return
    began = time.monotonic()
    process.terminate()
    say(f"{name}: {waiting_for}")
    killed = ""
    while process.poll() is None:
        if not killed and (abort.is_set() or time.monotonic() - began > PROCESS_STOP_TIMEOUT_S):
            killed = "stopped at once" if abort.is_set() else f"killed after {PROCESS_STOP_TIMEOUT_S:.0f} s"
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_POLL_S)
    outcome = killed or ("stopped" if process.returncode == 0 else describe_exit(process.returncode))
    console.print(f"  {name}: {outcome} ({time.monotonic() - began:.1f} s)", highlight=False)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="the whole pipeline with a simulated plant, live (the README's main command)",
        description="Starts Mosquitto and InfluxDB, an ingest worker, the alert worker, `ftel settle --every` and "
        "the default plant's gateways; fills --history of simulated time at --speedup, then runs at real time; "
        "shows a live view read back from InfluxDB: machines by state per workshop, utilisation, stops by reason, "
        "pipeline rate. Run it again and the same plant continues from where it stopped (its gateways resume from "
        "their checkpoints).",
    )
    parser.add_argument("--history", default="1h", help="simulated history to fill first (default 1h)")
    parser.add_argument("--speedup", type=float, help="speed while filling history (FTEL_SIMULATION__SPEEDUP)")
    parser.add_argument("--seconds", type=float, help="stop by itself after this many wall seconds")
    parser.add_argument("--keep-stack", action="store_true", help="leave Mosquitto and InfluxDB running")
    parser.add_argument(
        "--fresh", action="store_true", help="start a new plant history instead of continuing the last run's"
    )
    parser.set_defaults(handler=_run)
