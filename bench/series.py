"""Benchmark (not a test): InfluxDB at a county's start, when every machine's first points make new series.

A generated plant of N machines (the county's mix, 500 per workshop) runs its first minutes through the gateway
core as the runner drives it (first readings and metas, a birth re-stating every machine, telemetry, heartbeats,
the first windows and roll-ups: bench/alerts.py's stream), and each message becomes the lines ingest makes of it
(``to_points``, ``encode_point``). Those lines are written as a backlog of the ingest workers' batches
(``batch_size`` points each, the workers' retry policy, ``store_lines`` over the project's V1Writer, one thread
per worker, each with its own ``ingest-N`` identity) into the stack's database on a fresh local InfluxDB started
by ``LocalStack`` with each server tuning in turn: as fast as the pipeline would write them when the gateways'
start arrives at once (the 60,000-machine load test's start, docs/scale.md).

Printed per tuning and fleet size: the time to write the start (every series new), write latencies per HTTP
attempt (p50 / p99 / max), InfluxDB's ``500 timeout`` answers and other refusals, the client's own timeouts,
batches the retry policy gave up on (ingest would hold them), the series InfluxDB holds, its CPU seconds and
resident memory (peak after the start, and at the end); each against the first tuning's start at the same fleet
size (the baseline, Debian's defaults unless told otherwise). With ``--known`` the same lines are written again
a few minutes later, every series known: what creating the series itself costs. ``--busy``, ``--syncing`` and
``--snapshots`` put what shared the box at the load test's start beside InfluxDB while it writes.

    python bench/series.py [--machines 20000 60000] [--minutes 2] [--workers 2] [--tunings debian stack] [--known]
                           [--busy 2] [--syncing 4] [--snapshots 1]
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
from rich.console import Console
from rich.table import Table

from bench.alerts import stream
from bench.drain import memory_mib
from ftel.retry import RetryPolicy
from ftel.settings import InfluxSettings, IngestSettings
from ftel.stack import LocalStack
from ftel.stack.configs import COUNTY_START, DEBIAN_DEFAULTS, InfluxTuning
from ftel.storage.lineproto import encode_point
from ftel.storage.points import to_points
from ftel.storage.query import InfluxQuery
from ftel.storage.writer import LineWriter, V1Writer, WriteError
from ingest.store import store_lines, write_policy
from simulators.plant import generate_plant
from tests.support import Services

console = Console(width=220)
# The tunings compared; more can be named here to measure one setting at a time.
TUNINGS: dict[str, InfluxTuning] = {
    "debian": DEBIAN_DEFAULTS,
    "stack": COUNTY_START,
    "tsi1": InfluxTuning(index_version="tsi1"),
    "timeout-60s": InfluxTuning(write_timeout="60s"),
    "snapshot-256m": InfluxTuning(cache_snapshot_memory_size="256m", cache_max_memory_size="4g"),
}


# What shared the box with InfluxDB at the 60,000-machine start: simulated gateways (a core of Python each) whose
# spools commit (a WAL sync) at every tick, and Mosquitto writing snapshots of a gigabyte backlog.
CPU_LOOP = "while True: pass"
SYNC_LOOP = """
import os, sys
chunk, every = b"x" * 4096, int(sys.argv[2]) // 4096
with open(sys.argv[1], "wb") as f:
    while True:
        for _ in range(every):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
        if f.tell() > 1 << 28:
            f.seek(0)
"""
SPOOL_SYNC_BYTES = 4096  # a commit of a few messages
SNAPSHOT_SYNC_BYTES = 1 << 28  # a broker's snapshot: written whole, then synced


@dataclass(frozen=True)
class Disturbance:
    """Loops beside InfluxDB while it writes (all 0: InfluxDB has the box to itself)."""

    busy: int = 0  # a core of Python each
    syncing: int = 0  # small writes, each synced
    snapshots: int = 0  # 256 MiB writes, each synced

    def __str__(self) -> str:
        return f"{self.busy} busy, {self.syncing} syncing and {self.snapshots} snapshot-writing loops beside InfluxDB"

    @contextlib.contextmanager
    def beside(self, directory: Path) -> Iterator[None]:
        def sync(n: int, size: int) -> subprocess.Popen[bytes]:
            return subprocess.Popen([sys.executable, "-c", SYNC_LOOP, str(directory / f"sync-{n}"), str(size)])

        loops = [subprocess.Popen([sys.executable, "-c", CPU_LOOP]) for _ in range(self.busy)]
        loops += [sync(n, SPOOL_SYNC_BYTES) for n in range(self.syncing)]
        loops += [sync(self.syncing + n, SNAPSHOT_SYNC_BYTES) for n in range(self.snapshots)]
        try:
            yield
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()
            for n in range(self.syncing + self.snapshots):
                (directory / f"sync-{n}").unlink(missing_ok=True)


def start_lines(machines: int, minutes: float) -> tuple[list[str], int]:
    """The lines ingest makes of the plant's first ``minutes``, in the order one subscriber receives them, and
    how many series they make."""
    plant = generate_plant(machines, per_workshop=500)
    lines = [encode_point(p) for _, message in stream(plant, minutes) for p in to_points(message)]
    return lines, len({line.split(" ", 1)[0] for line in lines})


def shifted(lines: list[str], by_ms: int) -> list[str]:
    """The same series, later: every line's timestamp (the last word, ms) moved by ``by_ms``."""
    out = []
    for line in lines:
        head, ts = line.rsplit(" ", 1)
        out.append(f"{head} {int(ts) + by_ms}")
    return out


@dataclass
class Attempts:
    """Every HTTP write attempt: its seconds and how it ended."""

    seconds: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    gave_up: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, outcome: str) -> None:
        with self.lock:
            self.seconds.append(seconds)
            self.outcomes[outcome] += 1

    def percentile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def outcome_of(error: WriteError) -> str:
    if error.status is None:
        return "client timeout" if "timed out" in str(error).lower() else "unreachable"
    if error.status == 500 and "timeout" in str(error):
        return "500 timeout"
    return f"{error.status}"


class TimedWriter:
    """The writer ingest uses, each attempt timed and its outcome counted."""

    def __init__(self, writer: LineWriter, attempts: Attempts) -> None:
        self._writer = writer
        self._attempts = attempts

    def write(self, body: bytes) -> None:
        began = time.perf_counter()
        try:
            self._writer.write(body)
        except WriteError as error:
            self._attempts.add(time.perf_counter() - began, outcome_of(error))
            raise
        self._attempts.add(time.perf_counter() - began, "stored")

    def close(self) -> None:
        self._writer.close()


def write_backlog(
    writers: list[TimedWriter], batches: list[list[str]], policy: RetryPolicy, attempts: Attempts
) -> float:
    """Every batch written by the workers' threads, each taking the next batch as soon as it stored its last;
    a batch the retry policy gives up on is written again (ingest holds it and tries again). Wall seconds."""
    todo: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
    for batch in batches:
        todo.put(batch)

    def work(writer: TimedWriter) -> None:
        while True:
            try:
                batch = todo.get_nowait()
            except queue.Empty:
                return
            while True:
                try:
                    store_lines(writer, batch, policy)
                except WriteError:
                    with attempts.lock:
                        attempts.gave_up += 1
                else:
                    break

    threads = [threading.Thread(target=work, args=(w,)) for w in writers]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


@dataclass(frozen=True)
class Phase:
    seconds: float
    points: int
    attempts: Attempts
    cpu_s: float  # InfluxDB's


@dataclass(frozen=True)
class Result:
    tuning: str
    machines: int
    series_expected: int
    series_stored: int
    start: Phase  # every series new
    known: Phase | None  # the same series again, a few minutes later
    peak_rss_mib: float  # InfluxDB's, after the start
    rss_mib: float  # InfluxDB's, at the end


@dataclass(frozen=True)
class Run:
    """How each tuning is driven: the same for every one in a run."""

    workers: int  # ingest workers writing at once
    minutes: float  # plant minutes of the start
    beside: Disturbance
    known: bool  # write the same series again after the start
    batch_size: int = IngestSettings().batch_size

    def policy(self) -> RetryPolicy:
        return write_policy(IngestSettings())


def phase(stack: LocalStack, influx: list[InfluxSettings], lines: list[str], run: Run) -> Phase:
    pid = stack.influxdb.pid()
    assert pid is not None
    server = psutil.Process(pid)
    attempts = Attempts()
    writers = [TimedWriter(V1Writer(settings), attempts) for settings in influx]
    batches = [lines[i : i + run.batch_size] for i in range(0, len(lines), run.batch_size)]
    cpu = server.cpu_times()
    with run.beside.beside(stack.directory):
        seconds = write_backlog(writers, batches, run.policy(), attempts)
    after = server.cpu_times()
    for writer in writers:
        writer.close()
    return Phase(seconds, len(lines), attempts, after.user + after.system - cpu.user - cpu.system)


def workers_influx(stack: LocalStack, workers: int) -> list[InfluxSettings]:
    """The InfluxDB settings of ``workers`` ingest workers of the stack (each its own ``ingest-N`` identity)."""
    services = Services(stack)
    return [
        services.settings(stack.database, identity=f"ingest-{n + 1}").influx.model_copy(
            update={"retention_policy": stack.retention_policy}
        )
        for n in range(workers)
    ]


def measure(directory: Path, tuning: str, run: Run, *, lines: list[str], series: int, machines: int) -> Result:
    stack = LocalStack.on_free_ports(directory / f"{tuning}-{machines}", influx_tuning=TUNINGS[tuning])
    with stack:
        services = Services(stack)
        influx = workers_influx(stack, run.workers)
        pid = stack.influxdb.pid()
        assert pid is not None
        start = phase(stack, influx, lines, run)
        peak = memory_mib(pid, "VmHWM")
        known = phase(stack, influx, shifted(lines, int(run.minutes * 60_000)), run) if run.known else None
        admin = services.admin(stack.database).influx.model_copy(update={"retention_policy": stack.retention_policy})
        rows = InfluxQuery(admin).rows("SHOW SERIES EXACT CARDINALITY")
        stored = sum(int(row["count"]) for row in rows)
        return Result(tuning, machines, series, stored, start, known, peak, memory_mib(pid, "VmRSS"))


def report(results: list[Result], run: Run) -> None:
    table = Table(
        title=f"A county's start into InfluxDB: the first {run.minutes:g} plant minutes as one backlog, {run.workers} "
        f"writers of {run.batch_size:,}-point batches (ingest's retry policy), {run.beside}"
    )
    for column in ("tuning", "machines", "series stored", "phase", "seconds", "points/s", "ratio",
                   "attempt p50 / p99 / max s", "timeouts, refusals", "gave up", "InfluxDB CPU s",
                   "RSS peak / end"):  # fmt: skip
        table.add_column(column, justify="right")
    baseline: dict[int, float] = {}  # the first tuning's start, per fleet size
    for r in results:
        baseline.setdefault(r.machines, r.start.seconds)
        phases = [("start (new series)", r.start)] + ([("known series", r.known)] if r.known else [])
        for name, p in phases:
            a = p.attempts
            failed = {k: v for k, v in a.outcomes.items() if k != "stored"}
            table.add_row(
                r.tuning,
                f"{r.machines:,}",
                f"{r.series_stored:,} of {r.series_expected:,}",
                name,
                f"{p.seconds:.1f}",
                f"{p.points / p.seconds:,.0f}",
                f"{p.seconds / baseline[r.machines]:.2f}",
                f"{a.percentile(0.5):.2f} / {a.percentile(0.99):.2f} / {max(a.seconds):.2f}",
                ", ".join(f"{k} {v}" for k, v in sorted(failed.items())) or "0",
                str(a.gave_up),
                f"{p.cpu_s:.1f}",
                f"{r.peak_rss_mib:,.0f} / {r.rss_mib:,.0f} MiB" if p is r.start else "",
            )
    console.print(table)
    console.print("ratio: seconds against the first tuning's start at the same fleet size, measured in this run")
    console.print(f"load average now: {', '.join(f'{x:.2f}' for x in psutil.getloadavg())} (2 cores, maybe shared)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, nargs="+", default=[20_000, 60_000])
    parser.add_argument("--minutes", type=float, default=2.0, help="plant minutes of the start written")
    parser.add_argument("--workers", type=int, default=2, help="ingest workers writing at once (the load test's 2)")
    parser.add_argument(
        "--busy", type=int, default=0, help="busy loops beside InfluxDB while it writes (simulated gateways' load)"
    )
    parser.add_argument(
        "--syncing", type=int, default=0, help="loops that write and fsync beside InfluxDB (the gateways' spools)"
    )
    parser.add_argument(
        "--snapshots", type=int, default=0, help="loops that write 256 MiB and fsync (a broker's snapshots)"
    )
    parser.add_argument("--known", action="store_true", help="then write the same series again, a few minutes on")
    parser.add_argument(
        "--tunings", nargs="+", choices=sorted(TUNINGS), default=["debian", "stack"], help="the first is the baseline"
    )
    args = parser.parse_args()
    run = Run(args.workers, args.minutes, Disturbance(args.busy, args.syncing, args.snapshots), args.known)
    results = []
    with tempfile.TemporaryDirectory(prefix="ftel-series-") as tmp:
        for machines in args.machines:
            with console.status(f"the first {args.minutes:g} minutes of {machines:,} machines…"):
                lines, series = start_lines(machines, args.minutes)
            console.print(f"{machines:,} machines: {len(lines):,} points, {series:,} series")
            for tuning in args.tunings:
                with console.status(f"{tuning}: writing {machines:,} machines' start…"):
                    result = measure(Path(tmp), tuning, run, lines=lines, series=series, machines=machines)
                results.append(result)
                s = result.start
                console.print(
                    f"  {tuning}: start {s.seconds:.1f} s ({s.points / s.seconds:,.0f} points/s), "
                    f"{dict(s.attempts.outcomes)}, gave up {s.attempts.gave_up}, "
                    f"peak RSS {result.peak_rss_mib:,.0f} MiB"
                )
    report(results, run)


if __name__ == "__main__":
    main()
