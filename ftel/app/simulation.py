"""What the commands that run a simulated plant share (`ftel simulate`, `ftel gateway --simulate`, `ftel run`,
`ftel loadtest`): the run options, the simulated run they describe, progress lines, the ledger at the end."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from ftel.plant.calendar import Calendar, load_calendar
from ftel.plant.orders import OrderBook, load_order_book
from ftel.plant.reasons import load_reasons, unexplained_rule
from ftel.settings import Settings
from gateway.runner import Progress
from simulators.clock import SimClock, wall_ms
from simulators.jobs import default_order_book
from simulators.ledger import plant_ledger, write_ledger
from simulators.operators import OperatorPlay
from simulators.session import SimulationRun, plant_from_settings

console = Console(stderr=True, soft_wrap=True)


def parse_duration(text: str) -> int:
    """'90s', '15m', '2h', '1d' or plain seconds → milliseconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    scale = units.get(text[-1:])
    number = float(text[:-1] if scale else text)
    return int(number * (scale or 1) * 1000)


def start_of(args: argparse.Namespace, duration_ms: int, window_ms: int) -> int:
    """--start-ms if given, else long enough ago that the whole run is in the past, on a window edge."""
    if args.start_ms is not None:
        return int(args.start_ms)
    begin = wall_ms() - duration_ms - window_ms
    return begin - begin % window_ms


def add_run_options(parser: argparse.ArgumentParser, *, duration_default: str | None) -> None:
    parser.add_argument(
        "--duration",
        default=duration_default,
        help="simulated time to run, e.g. 2h, 90m (default: until Ctrl-C)",
    )
    parser.add_argument("--speedup", type=float, help="simulated seconds per wall second (FTEL_SIMULATION__SPEEDUP)")
    parser.add_argument("--start-ms", type=int, help="simulated start, epoch ms (default: the run ends about now)")
    parser.add_argument(
        "--anchor-ms",
        type=int,
        help="wall-clock epoch ms when simulated time was --start-ms (share one plant clock "
        "between processes; default: now)",
    )
    parser.add_argument("--plant", type=Path, help="plant YAML (default: the built-in two-workshop plant)")
    parser.add_argument("--ledger", type=Path, help="write the ground-truth ledger (JSON Lines) here at the end")


def simulation_run(args: argparse.Namespace, settings: Settings) -> SimulationRun:
    if args.plant:
        settings.simulation.plant = args.plant
    plant = plant_from_settings(settings)
    window_ms = settings.simulation.window_s * 1000
    duration_ms = parse_duration(args.duration) if args.duration else None
    start_ms = start_of(args, duration_ms or 0, window_ms)
    speedup = args.speedup or settings.simulation.speedup
    clock = SimClock(start_ms, speedup, args.anchor_ms if args.anchor_ms is not None else wall_ms())
    end_ms = start_ms + duration_ms if duration_ms is not None else None
    calendar = load_calendar(settings.calendar) if settings.calendar else None
    return SimulationRun(plant, start_ms, end_ms, clock, calendar)


def print_progress(workshop: str, p: Progress) -> None:
    link = "connected" if p.connected else "[red]broker away, spooling[/red]"
    console.print(
        f"[dim]{time.strftime('%H:%M:%S')}[/dim] gateway [bold]{workshop}[/bold] sim "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(p.sim_ms / 1000))}Z  published {p.published}"
        f"  confirmed {p.confirmed}  spool {p.spool_depth}  dropped {p.dropped}  {link}",
        # Its markup only: the highlighter's regular expressions took more than half of the line's 0.3 ms, and a
        # county's process prints a line per gateway every 2 s.
        highlight=False,
    )


def write_run_ledger(run: SimulationRun, settings: Settings, path: Path, workshops: list[str] | None) -> None:
    end = run.end_ms if run.end_ms is not None else run.clock.now_ms()
    rows = (
        row
        for w in (workshops or [w.id for w in run.plant.workshops])
        for row in plant_ledger(
            run.plant,
            start_ms=run.start_ms,
            end_ms=end,
            window_ms=settings.simulation.window_s * 1000,
            workshop=w,
            calendar=run.calendar,
            micro_stop_s=settings.micro_stop_s,
            orders=simulated_orders(settings),
            operators=simulated_operators(settings, run.calendar),
        )
    )
    count = write_ledger(rows, path)
    console.print(f"ledger: {count} machine-windows → {path}")


def simulated_operators(settings: Settings, calendar: Calendar | None) -> OperatorPlay:
    """How the simulated operators judge stops: the settings' reasons and rule, on the run's calendar."""
    return OperatorPlay(load_reasons(settings.operators.reasons), unexplained_rule(settings, calendar))


def simulated_orders(settings: Settings) -> OrderBook:
    """The styles and orders the simulated knitting machines work on: the settings' orders file, or the
    simulation's own (simulators/jobs.py)."""
    return load_order_book(settings.orders) if settings.orders else default_order_book()
