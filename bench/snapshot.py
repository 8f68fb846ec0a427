"""Benchmark (not a test): InfluxDB's cache snapshot at a county's steady rate, and what it does to writes.

The 60,000-machine load test's late messages all came while InfluxDB 1.6 wrote its first snapshot of the cache
(docs/scale.md, the fourth round): was that the box's two cores being full, or InfluxDB holding writes while it
snapshots? Here InfluxDB (a fresh `LocalStack`, the stack's tuning unless told otherwise) gets the lines ingest
makes of a generated plant's first minutes (bench/series.py's), repeated later in plant time until ``--seconds``
are filled, **paced** as the load test's two workers write them: every ``flush_interval_s`` each worker writes
what arrived meanwhile (``--points-per-s`` in all, the 60,000 run's 3,750 by default), one write at a time, as
ingest does. ``--busy N`` puts N loops of a core each beside it (the rest of the load test's box).

Printed: each batch's delay (ready to stored: what the load test counts as latency, less the broker), p50 / p99 /
max, the points stored later than 2 s after they were ready, and each 10 s of the run with its slowest delay,
InfluxDB's CPU and the TSM files that appeared in it (a new file is a snapshot, or a compaction's output).

    python bench/snapshot.py [--machines 60000] [--seconds 420] [--points-per-s 3750] [--busy 0] [--tuning stack]
"""

from __future__ import annotations

import argparse
import queue
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
from rich.console import Console

from bench.series import TUNINGS, Attempts, Disturbance, TimedWriter, shifted, start_lines, workers_influx
from ftel.settings import IngestSettings
from ftel.stack import LocalStack
from ftel.storage.writer import V1Writer, WriteError
from ingest.store import store_lines, write_policy

console = Console(width=160)
LATE_S = 2.0
BUCKET_S = 10


@dataclass(frozen=True)
class Stored:
    ready_s: float  # since the start: when the batch's points had all arrived
    stored_s: float
    points: int

    @property
    def delay_s(self) -> float:
        return self.stored_s - self.ready_s


def paced_lines(lines: list[str], minutes: float, total: int) -> list[str]:
    """``lines`` and the same series later again (each copy ``minutes`` on) until ``total`` lines."""
    out: list[str] = []
    copy = 0
    while len(out) < total:
        out += lines if copy == 0 else shifted(lines, int(copy * minutes * 60_000))
        copy += 1
    return out[:total]


def write_paced(
    writers: list[TimedWriter], lines: list[str], points_per_s: float, flush_s: float
) -> tuple[list[Stored], float]:
    """Each worker, every ``flush_s``, writes the lines that arrived for it meanwhile (at ``points_per_s`` in all,
    shared out in turn); a write that fails is tried again, as ingest holds it. Returns every batch stored and the
    start (perf_counter)."""
    per_batch = max(1, round(points_per_s * flush_s / len(writers)))
    todo: list[queue.SimpleQueue[tuple[float, list[str]] | None]] = [queue.SimpleQueue() for _ in writers]
    stored: list[Stored] = []
    lock = threading.Lock()
    began = time.perf_counter()

    def work(writer: TimedWriter, inbox: queue.SimpleQueue[tuple[float, list[str]] | None]) -> None:
        # Ingest's policy, without its total: a write given up on is written again here, as a worker holds it.
        retry = replace(write_policy(IngestSettings()), max_total_s=None)
        while (item := inbox.get()) is not None:
            ready, batch = item
            # What arrived while the last write was out goes in this one, as a worker's batch fills meanwhile.
            while not inbox.empty():
                more = inbox.get()
                if more is None:
                    inbox.put(None)
                    break
                batch = batch + more[1]
            while True:
                try:
                    store_lines(writer, batch, retry)
                    break
                except WriteError:
                    continue
            with lock:
                stored.append(Stored(ready, time.perf_counter() - began, len(batch)))

    threads = [threading.Thread(target=work, args=(w, q)) for w, q in zip(writers, todo, strict=True)]
    for thread in threads:
        thread.start()
    for turn, start in enumerate(range(0, len(lines), per_batch)):
        due = began + (start // per_batch + 1) * flush_s / len(writers)
        time.sleep(max(0.0, due - time.perf_counter()))
        todo[turn % len(writers)].put((time.perf_counter() - began, lines[start : start + per_batch]))
    for inbox in todo:
        inbox.put(None)
    for thread in threads:
        thread.join()
    return stored, began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=60_000)
    parser.add_argument("--seconds", type=float, default=420.0, help="wall seconds of writing")
    parser.add_argument("--points-per-s", type=float, default=3_750.0, help="the 60,000 load test's rate")
    parser.add_argument("--minutes", type=float, default=2.0, help="plant minutes of the plant's lines, repeated")
    parser.add_argument("--busy", type=int, default=0, help="loops of a core each beside InfluxDB")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tuning", choices=sorted(TUNINGS), default="stack")
    args = parser.parse_args()

    console.print(f"making the lines of {args.machines:,} machines' first {args.minutes:g} plant minutes…")
    lines, series = start_lines(args.machines, args.minutes)
    total = int(args.seconds * args.points_per_s)
    paced = paced_lines(lines, args.minutes, total)
    console.print(f"{len(lines):,} lines, {series:,} series; writing {total:,} at {args.points_per_s:,.0f} points/s")
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack.on_free_ports(Path(tmp) / "stack", influx_tuning=TUNINGS[args.tuning])
        with stack:
            influx = workers_influx(stack, args.workers)
            pid = stack.influxdb.pid()
            assert pid is not None
            server = psutil.Process(pid)
            cpu_samples: list[tuple[float, float]] = []
            seen: dict[Path, float] = {}  # each TSM file, when first seen (a snapshot's or a compaction's output)
            sampling = threading.Event()
            data = stack.directory / "influxdb" / "data"

            def sample_cpu() -> None:
                while not sampling.wait(1.0):
                    times = server.cpu_times()
                    now = time.perf_counter()
                    cpu_samples.append((now, times.user + times.system))
                    for path in data.rglob("*.tsm"):
                        seen.setdefault(path, now)

            sampler = threading.Thread(target=sample_cpu, daemon=True)
            sampler.start()
            writers = [TimedWriter(V1Writer(s), Attempts()) for s in influx]
            with Disturbance(busy=args.busy).beside(stack.directory):
                stored, began = write_paced(writers, paced, args.points_per_s, IngestSettings().flush_interval_s)
            sampling.set()
            files = sorted((t - began, path.stat().st_size if path.exists() else 0) for path, t in seen.items())
            report(stored, [(t - began, c) for t, c in cpu_samples], files, args)


def report(
    stored: list[Stored], cpu: list[tuple[float, float]], files: list[tuple[float, int]], args: argparse.Namespace
) -> None:
    delays = sorted(s.delay_s for s in stored)
    points = sum(s.points for s in stored)
    late = sum(s.points for s in stored if s.delay_s > LATE_S)
    console.print(
        f"{args.machines:,} machines' lines at {args.points_per_s:,.0f} points/s, {args.busy} busy loops beside, "
        f"tuning {args.tuning}: {points:,} points in {len(stored):,} writes; delay ready → stored p50 "
        f"{delays[len(delays) // 2]:.2f} s, p99 {delays[int(0.99 * len(delays))]:.2f} s, max {delays[-1]:.2f} s; "
        f"{late:,} points ({100 * late / points:.2f} %) later than {LATE_S:g} s"
    )
    end = max(s.stored_s for s in stored)
    for bucket in range(0, int(end) + 1, BUCKET_S):
        inside = [s for s in stored if bucket <= s.stored_s < bucket + BUCKET_S]
        cpu_in = [c for t, c in cpu if bucket <= t < bucket + BUCKET_S]
        cores = (cpu_in[-1] - cpu_in[0]) / max(1, len(cpu_in) - 1) if len(cpu_in) > 1 else 0.0
        new = [size for t, size in files if bucket <= t < bucket + BUCKET_S]
        worst = max((s.delay_s for s in inside), default=0.0)
        marks = (
            f"  new TSM files: {', '.join(f'{size / 2**20:,.0f} MiB' if size else 'compacted away' for size in new)}"
            if new
            else ""
        )
        console.print(
            f"  {bucket:4d}–{bucket + BUCKET_S:<4d} s: slowest {worst:5.2f} s, InfluxDB {cores:4.2f} cores{marks}"
        )


if __name__ == "__main__":
    main()
