"""Benchmark (not a test): what the simulated gateways (`ftel simulate run`) cost per 10,000 simulated machines.

For each plant size, a generated plant (`generate_plant(N)`, the county's mix, 500 machines per workshop, one
gateway each) runs in one `ftel simulate run` process at real time (speedup 1) against the project's own local
stack (Mosquitto and InfluxDB on free loopback ports). No ingest worker runs: the gateways publish to Mosquitto
and keep everything in their spools unconfirmed (nothing subscribes, so the broker keeps nothing). Printed, for
the simulating process (psutil; its own CPU, not its children's): how long it took from its start to its first
published message and the CPU seconds that took, then, after a warm-up (the start's catch-up, births and metas),
CPU seconds per wall second (cores) over a fixed wall time (and of those, its main thread's: the gateways' loop; the
rest is the links' network thread, gateway/link_hub.py, or in code before it paho's, one per gateway), its peak
resident memory (VmHWM), and both per 10,000 machines.
The machine has 2 cores and may be shared: read the figures of one run side by side, not against another day's.
``--baseline DIR`` runs the code of another checkout too (its `ftel` from DIR, e.g. ``git archive <commit> | tar
-x -C DIR``), at the same time as this code, each on a plant of its own of the same size, measured over the same
wall seconds (so a load from elsewhere weighs on both alike; their starts contend with each other), and prints
this code's figures as ratios to the baseline's. A process behind real time (a loaded machine) catches up in the
measured seconds and publishes more than real time makes: CPU per message published is then the figure to
compare (a link lost and connected again sends everything unconfirmed again: ``connects`` says so).

    python bench/simulate.py [--machines 5000 10000] [--warmup 30] [--seconds 60] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
from rich.console import Console
from rich.table import Table

from ftel.plant.layout import dump_plant
from ftel.stack import LocalStack
from simulators.plant import generate_plant
from tests.support import Services, ftel_env, start_ftel, stop_processes, unique, wait_until

console = Console(width=120)
PER_WORKSHOP = 500
# A progress line of `ftel simulate run` (ftel/app/simulation.py print_progress): a gateway's published count.
PUBLISHED = re.compile(r"gateway (\S+) sim .* published (\d+)")


@dataclass(frozen=True, slots=True)
class Cost:
    code: str  # "this", or the baseline's directory
    machines: int
    start_s: float  # wall seconds from the process's start to its first published message
    start_cpu_s: float  # CPU seconds it spent until then
    cores: float  # CPU seconds per wall second, measured after the warm-up
    loop_cores: float  # of which the main thread's: the gateways' loop (the other is the links' network thread)
    peak_mib: float
    published: int  # messages published over the measured wall time (as of the progress lines, every 2 s)
    connects: int  # connections to the broker over the whole run (one per gateway, unless a link was lost)


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def published(log: Path) -> int:
    """Messages published so far by all the process's gateways (each one's latest progress line)."""
    latest: dict[str, int] = {}
    for workshop, count in PUBLISHED.findall(log.read_text(errors="replace")) if log.exists() else []:
        latest[workshop] = int(count)
    return sum(latest.values())


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def main_thread_cpu_s(process: psutil.Process) -> float:
    """The CPU seconds of the process's main thread (its thread id is the process id)."""
    return next((t.user_time + t.system_time for t in process.threads() if t.id == process.pid), 0.0)


def start_simulation(plant_file: Path, env: dict[str, str], log: Path, code: Path | None) -> subprocess.Popen[bytes]:
    """`ftel simulate run` at real time; with ``code``, the `ftel` of that checkout (found first on the path: with
    PYTHONSAFEPATH, ``-m`` does not put the working directory before it)."""
    if code is not None:
        env = env | {"PYTHONSAFEPATH": "1", "PYTHONPATH": str(code)}
    return start_ftel(["simulate", "run", "--plant", str(plant_file), "--speedup", "1"], env, log)


@dataclass(slots=True)
class Running:
    code: Path | None
    proc: subprocess.Popen[bytes]
    process: psutil.Process
    log: Path
    began: float
    start_s: float = 0.0
    start_cpu_s: float = 0.0

    @property
    def name(self) -> str:
        return "this" if self.code is None else "baseline"


def start_plant(services: Services, machines: int, work: Path, code: Path | None) -> Running:
    """A generated plant of its own (its own site) simulated by one `ftel simulate run` of ``code``."""
    database = unique("sim")
    name = "this" if code is None else "baseline"
    generated = generate_plant(machines, site=unique("s"), per_workshop=PER_WORKSHOP)
    # Gateway ids of their own: a gateway's id is its MQTT client id, and two processes' gateways of one id would
    # take each other's connection at the broker, again and again.
    tag = "t" if code is None else "b"
    workshops = tuple(w.model_copy(update={"gateway_id": f"{w.gateway_id}-{tag}"}) for w in generated.workshops)
    plant = generated.model_copy(update={"workshops": workshops})
    plant_file = work / f"plant-{name}-{machines}.yaml"
    plant_file.write_text(dump_plant(plant))
    services.grant_plant(plant)
    env = ftel_env(services.settings(database), FTEL_SITE=plant.site)
    log = work / f"simulate-{name}-{machines}.log"
    began = time.monotonic()
    proc = start_simulation(plant_file, env, log, code)
    return Running(code, proc, psutil.Process(proc.pid), log, began)


def measure(
    services: Services,
    machines: int,
    seconds: float,
    work: Path,
    *,
    warmup: float,
    py_spy: bool,
    codes: list[Path | None],
) -> list[Cost]:
    """Each code's process started at once, each on a plant of ``machines`` of its own, measured over the same
    wall seconds (whatever else loads the machine then loads them alike)."""
    runs = [start_plant(services, machines, work, code) for code in codes]
    try:
        for run in runs:

            def first_message(run: Running = run) -> bool:
                if run.proc.poll() is not None:
                    raise AssertionError(f"`ftel simulate run` ended early ({run.proc.returncode}); see {run.log}")
                return published(run.log) > 0

            # Progress lines come every 2 s: the start is known to within that.
            wait_until(first_message, timeout_s=600, what=f"the first message of {machines} machines", every_s=0.5)
            run.start_s, run.start_cpu_s = time.monotonic() - run.began, cpu_s(run.process)
        time.sleep(warmup)
        before = [(cpu_s(r.process), main_thread_cpu_s(r.process), published(r.log)) for r in runs]
        profiles = []
        if py_spy:
            for run in runs:
                profile = Path(f"simulate-{run.name}-{machines}.folded").resolve()
                record = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(run.proc.pid)]
                record += ["--duration", str(int(seconds)), "--format", "raw", "--output", str(profile)]
                profiles.append(
                    (subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), profile)
                )
        time.sleep(seconds)
        costs = [
            Cost(
                str(run.code or "this"),
                machines,
                run.start_s,
                run.start_cpu_s,
                (cpu_s(run.process) - cpu) / seconds,
                (main_thread_cpu_s(run.process) - loop) / seconds,
                peak_mib(run.proc.pid),
                published(run.log) - sent,
                run.log.read_text(errors="replace").count("connected to MQTT broker"),
            )
            for run, (cpu, loop, sent) in zip(runs, before, strict=True)
        ]
        for recorder, profile in profiles:
            recorder.wait(timeout=seconds + 60)
            console.print(f"profile of {machines:,} machines → {profile}")
        return costs
    finally:
        # Its shutdown waits for confirmations that will not come (no ingest): cut it short.
        stop_processes([run.proc for run in runs], timeout_s=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, nargs="+", default=[5_000, 10_000])
    parser.add_argument("--warmup", type=float, default=30.0, help="wall seconds after the first message not measured")
    parser.add_argument("--seconds", type=float, default=60.0, help="wall seconds measured after the warm-up")
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="record the measured seconds with py-spy (its sampling costs the process a little) into the "
        "working directory, as folded stacks: ./simulate-this-N.folded (./simulate-baseline-N.folded)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of other code (e.g. the commit before a change) to measure beside this one, plant by plant",
    )
    args = parser.parse_args()
    codes: list[Path | None] = [None] if args.baseline is None else [args.baseline.resolve(), None]
    costs = []
    with tempfile.TemporaryDirectory() as tmp, LocalStack.on_free_ports(Path(tmp) / "stack") as stack:
        services = Services(stack)
        for machines in args.machines:
            with console.status(f"{machines:,} simulated machines, {len(codes)} process(es)…"):
                costs += measure(
                    services, machines, args.seconds, Path(tmp), warmup=args.warmup, py_spy=args.py_spy, codes=codes
                )
    table = Table(
        title=f"`ftel simulate run`, real time: {args.seconds:g} s measured, {args.warmup:g} s after the first message"
    )
    for column in (
        "code",
        "machines",
        "to first message",
        "CPU until then",
        "cores",
        "of which the loop",
        "cores per 10,000",
        "peak RSS",
        "peak RSS per 10,000",
        "published",
        "CPU per message",
        "connects",
    ):
        table.add_column(column, justify="right")
    baseline = {c.machines: c for c in costs if c.code != "this"}
    for c in costs:
        per = 10_000 / c.machines
        table.add_row(
            "this" if c.code == "this" else "baseline",
            f"{c.machines:,}",
            f"{c.start_s:.1f} s",
            f"{c.start_cpu_s:.1f} s",
            f"{c.cores:.3f}",
            f"{c.loop_cores:.3f}",
            f"{c.cores * per:.3f}",
            f"{c.peak_mib:.0f} MiB",
            f"{c.peak_mib * per:.0f} MiB",
            f"{c.published:,}",
            f"{c.cores * args.seconds / max(1, c.published) * 1e6:.0f} µs",
            f"{c.connects:,}",
        )
    console.print(table)
    for c in costs:
        base = baseline.get(c.machines)
        if c.code == "this" and base is not None:
            per_message = (c.cores / max(1, c.published)) / (base.cores / max(1, base.published))
            console.print(
                f"{c.machines:,} machines, this code / baseline: cores {c.cores / base.cores:.2f} "
                f"(per message published {per_message:.2f}), "
                f"peak RSS {c.peak_mib / base.peak_mib:.2f}, to first message {c.start_s / base.start_s:.2f}, "
                f"published {c.published / max(1, base.published):.2f}"
            )
    if args.baseline is not None:
        console.print(f"baseline: {args.baseline}")
    console.print(f"load average now: {', '.join(f'{x:.2f}' for x in psutil.getloadavg())} (2 cores, maybe shared)")


if __name__ == "__main__":
    main()
