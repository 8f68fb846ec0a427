"""`ftel loadtest`: a county plant through the whole pipeline, live progress, then a verdict and a report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from ftel.app.simulation import parse_duration
from ftel.errors import CliError
from ftel.settings import Settings
from loadtest.aims import ALERT_LATENCY_AIM_MS, LATENCY_AIM_MS, Aims
from loadtest.run import LoadTest, LoadTestOptions


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value

    return parse


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 15m or 1h") from None


def _loadtest(args: argparse.Namespace, settings: Settings) -> int:
    console = Console(stderr=True)
    out = args.out or settings.stack.dir / "loadtest" / f"{time.strftime('%Y%m%d-%H%M%S')}-{args.machines}m"
    if out.exists() and any(out.iterdir()):
        raise CliError(f"{out} is not empty: give another --out (each run writes its own directory)")
    options = LoadTestOptions(
        machines=args.machines,
        duration_ms=args.duration,
        out=out,
        per_workshop=args.per_workshop,
        workers=args.workers,
        gateway_processes=args.gateway_processes,
        speedup=args.speedup,
        faults=args.faults,
        target=args.target,
        rules=args.rules,
        sample_s=args.sample_s,
        keep_data=args.keep_data,
        alert_wait_s=args.alert_wait_s,
        aims=Aims(round(args.latency_aim_s * 1000), round(args.alert_latency_aim_s * 1000)),
    )
    summary = LoadTest(options, settings, console).run()
    verdict = "[green]PASSED[/green]" if summary["passed"] else "[red]FAILED[/red]"
    console.print(
        f"{verdict}: lost {summary['lost']}, doubled {summary['doubled']}, wrong {summary['wrong']}; "
        f"{summary['faults_alerted']}/{summary['faults_injected']} injected faults alerted; "
        f"{summary['messages']:,} messages, {summary['points']:,} points in {summary['wall_s']:,.0f} s; "
        f"latency p99 {summary['latency_p99_ms']} ms (after the warm-up, before the stop: "
        f"{summary['latency_steady_p99_ms']} ms); alert latency p99 {summary['alert_latency_p99_ms']} ms"
    )
    for difference in summary["differences"][:10]:
        console.print(f"  {difference}")
    for missed in summary["aims_missed"]:
        console.print(f"  [red]aim missed[/red]: {missed}")
    if not summary["aims_judged"]:
        console.print("  latency aims not judged: only a run at real time (--speedup 1) is a claim about speed")
    return 0 if summary["passed"] else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "loadtest",
        help="load-test the pipeline with a generated county plant; verdict against the ledger, HTML report",
        description="Generates a plant of --machines (workshops of --per-workshop machines, one gateway each) "
        "with injected faults, runs its gateways in several `ftel simulate run` processes on one plant clock, "
        "ingest workers and the alert worker, on a local Mosquitto and InfluxDB started on free ports (secured "
        "as `ftel stack up` does) or on the broker and InfluxDB of the settings (--target settings: credentials "
        "from the credentials file). Shows rate, lag, latency, CPU and memory per component while it runs; at "
        "the end compares InfluxDB with the simulator's ledger machine by machine and writes summary.json and "
        "report.html (docs/scale.md explains every figure). Exit code 0: passed; 1: lost, doubled or wrong "
        "data, a fault without its alert, a gateway process that failed, or at real time a latency aim missed; 2: "
        "could not run.",
    )
    parser.add_argument("--machines", type=_positive(int), required=True, help="simulated machines")
    parser.add_argument(
        "--duration", type=_duration, default=parse_duration("10m"), help="plant time to run, e.g. 5m, 1h (default 10m)"
    )
    parser.add_argument("--workers", type=_positive(int), default=2, help="ingest worker processes (default 2)")
    parser.add_argument(
        "--gateway-processes",
        type=_positive(int),
        help="processes the gateways run in (default: one per 10,000 machines, at most one per workshop)",
    )
    parser.add_argument(
        "--per-workshop", type=_positive(int), default=500, help="machines per workshop, one gateway each (default 500)"
    )
    parser.add_argument(
        "--speedup",
        type=_positive(float),
        default=1.0,
        help="plant seconds per wall second (default 1: real time, where latencies mean what they say)",
    )
    parser.add_argument(
        "--faults",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="inject a long DOWN, a burst of stops and overheating in every workshop and check their alerts",
    )
    parser.add_argument(
        "--target",
        choices=("local", "settings"),
        default="local",
        help="local: Mosquitto and InfluxDB started for the run; settings: the broker and InfluxDB of the settings",
    )
    parser.add_argument("--rules", type=Path, help="alert rules YAML for the alert worker (default: the built-in)")
    parser.add_argument("--out", type=Path, help="directory for the report, summary, plant and logs")
    parser.add_argument(
        "--alert-wait-s",
        type=_positive(float),
        default=60.0,
        help="after the gateways end, wait this long at most for the injected faults' alerts (default 60)",
    )
    parser.add_argument(
        "--latency-aim-s",
        type=_positive(float),
        default=LATENCY_AIM_MS / 1000,
        help="at real time, fail the run if end-to-end p99 after the warm-up is above this (default 2)",
    )
    parser.add_argument(
        "--alert-latency-aim-s",
        type=_positive(float),
        default=ALERT_LATENCY_AIM_MS / 1000,
        help="at real time, fail the run if alert latency p99 is above this (default 5)",
    )
    parser.add_argument("--sample-s", type=_positive(float), default=2.0, help="seconds between samples (default 2)")
    parser.add_argument(
        "--keep-data", action="store_true", help="keep InfluxDB's and the broker's data after a passing run"
    )
    parser.set_defaults(handler=_loadtest)
