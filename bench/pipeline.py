"""Benchmark (not a test): InfluxDB's raw write ceiling vs. the whole pipeline's end-to-end rate, in one run.

1. Raw ceiling: pre-built line protocol in large batches straight to /write.
2. Pipeline: a generated plant's gateways at full speed → Mosquitto → N ingest workers → InfluxDB; timed from
   the first gateway message to the last point stored, checked against the ledger (nothing lost, nothing
   doubled).
Prints both rates, their ratio and the ingest workers' peak memory (bench/drain.py measures the workers alone
on a backlog, against the bare MQTT client). Usage:
    python bench/pipeline.py [--machines 2000] [--hours 1] [--workers 1] [--raw-points 600000]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftel.plant.layout import dump_plant
from ftel.security.identities import Role
from ftel.stack import LocalStack
from ftel.storage.lineproto import Point, encode_point
from ftel.storage.query import InfluxQuery
from ftel.storage.writer import RetryPolicy, V1Writer, write_with_retry
from simulators.ledger import plant_ledger
from simulators.plant import generate_plant
from tests.ledger_check import differences, ledger_totals, stored_totals
from tests.support import Services, ftel_env, start_ftel, wait_ready, wait_until

console = Console()
RAW_BATCH = 10_000
HOUR_MS = 3_600_000


def raw_ceiling(services: Services, points: int) -> float:
    # As ingest writes: the write-only InfluxDB user (authentication costs the same for every point).
    settings = services.settings("bench_raw", identity="ingest-1")
    writer = V1Writer(settings.influx)
    base = (time.time_ns() // 1_000_000 // HOUR_MS - 48) * HOUR_MS
    # Same shape as the pipeline's points (state_time windows: 4 tags, 11 fields), built before timing.
    batches = []
    for start in range(0, points, RAW_BATCH):
        lines = [
            encode_point(
                Point(
                    "state_time",
                    {
                        "site": "qinghe",
                        "workshop": f"ws{i % 10}",
                        "machine_type": "carding",
                        "machine_id": f"M{i % 5000}",
                    },
                    {
                        "running_ms": 50_000 + i % 7,
                        "idle_ms": 0,
                        "setup_ms": 0,
                        "down_ms": 10_000,
                        "maintenance_ms": 0,
                        "offline_ms": 0,
                        "window_ms": 60_000,
                        "observed_ms": 60_000,
                        "units": 1,
                        "defects": 0,
                        "partial": False,
                    },
                    base + (i // 5000) * 60_000,
                )
            )
            for i in range(start, min(points, start + RAW_BATCH))
        ]
        batches.append("\n".join(lines).encode())
    began = time.perf_counter()
    for body in batches:
        write_with_retry(writer, body, RetryPolicy())
    return points / (time.perf_counter() - began)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pipeline_rate(services: Services, machines: int, hours: int, workers: int, logs: Path) -> dict[str, float]:
    """Everything live at once: gateways at full speed, workers storing as they come."""
    database = "bench_live"
    logs = logs / database
    logs.mkdir()
    settings = services.settings(database)
    plant = generate_plant(machines, per_workshop=max(1, machines // 4))
    plant_file = logs / "plant.yaml"
    plant_file.write_text(dump_plant(plant))
    services.grant_plant(plant)
    for n in range(workers):
        services.grant(f"bench-{n}", Role.INGEST)
    env = ftel_env(
        settings,
        FTEL_INGEST__GROUP=database,
        FTEL_SIMULATION__PLANT=str(plant_file),
        FTEL_SIMULATION__TELEMETRY_INTERVAL_S="60",
        FTEL_SIMULATION__TICK_S="0.02",
    )
    procs = []
    for n in range(workers):
        log = logs / f"worker{n}.log"
        procs.append(start_ftel(["ingest", "--worker-id", f"bench-{n}"], env, log))
        wait_ready(log)
    start = (time.time_ns() // 1_000_000 // HOUR_MS - hours - 2) * HOUR_MS
    end = start + hours * HOUR_MS
    query = InfluxQuery(services.admin(database).influx)
    expected_windows = machines * hours * 60
    began = time.perf_counter()
    sim = start_ftel(
        ["simulate", "run", "--duration", f"{hours}h", "--speedup", "1000000", "--start-ms", str(start)],
        env,
        logs / "sim.log",
    )
    with console.status("pipeline running…") as status:

        def done() -> bool:
            rows = query.rows("SELECT count(running_ms) AS n FROM state_time")
            stored = int(rows[0]["n"]) if rows else 0
            status.update(
                f"pipeline running… {stored}/{expected_windows} machine-windows stored, "
                f"{time.perf_counter() - began:.0f} s"
            )
            return stored >= expected_windows and sim.poll() is not None

        wait_until(done, timeout_s=1800, what="every window stored", every_s=0.5)
    elapsed = time.perf_counter() - began
    peak = max(peak_rss_mb(p.pid) for p in procs)
    for p in procs:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    # Machine points only (health points excluded), the same count whether or not a worker restarted.
    points = sum(
        int(query.rows(f"SELECT count({field}) AS n FROM {m}")[0]["n"])
        for m, field in (
            ("state_time", "running_ms"),
            ("downtime", "down_ms"),
            ("telemetry", "speed"),
            ("machine_state", "state_code"),
            ("machine_info", "model"),
            ("gateway_heartbeat", "seq"),
        )
    )
    with console.status("checking against the ledger…"):
        ledger = ledger_totals(plant_ledger(plant, start_ms=start, end_ms=end, window_ms=60_000), "workshop")
        diffs = differences(ledger, stored_totals(query, "workshop", start, end))
    return {
        "points": points,
        "seconds": elapsed,
        "rate": points / elapsed,
        "peak_mb": peak,
        "exact": float(not diffs),
        "diffs": float(len(diffs)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=2000)
    parser.add_argument("--hours", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--raw-points", type=int, default=600_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftel-bench-") as tmp:
        stack = LocalStack.on_free_ports(Path(tmp) / "stack")  # secured as `ftel stack up` secures it
        with console.status("starting Mosquitto and InfluxDB…"):
            stack.up()
        try:
            services = Services(stack)
            with console.status(f"raw InfluxDB ceiling: {args.raw_points} pre-built points…"):
                raw = raw_ceiling(services, args.raw_points)
            console.print(f"raw ceiling: {raw:,.0f} points/s")
            live = pipeline_rate(services, args.machines, args.hours, args.workers, Path(tmp))
            console.print(f"pipeline end to end: {live['rate']:,.0f} points/s")
        finally:
            stack.down()
    table = Table(
        title=f"ftel benchmark — {os.cpu_count()} cores, {args.machines} machines × {args.hours} h, "
        f"{args.workers} ingest worker(s)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("InfluxDB raw write ceiling", f"{raw:,.0f} points/s")
    for name, result in (("pipeline end to end (gateways live)", live),):
        table.add_row(
            name,
            f"{result['rate']:,.0f} points/s ({result['points']:,.0f} points in {result['seconds']:.1f} s)",
        )
        table.add_row("  ratio to the raw ceiling", f"{result['rate'] / raw:.2f}")
        table.add_row("  ingest worker peak memory", f"{result['peak_mb']:.0f} MiB")
        table.add_row(
            "  stored = ledger (per workshop)",
            "yes" if result["exact"] else f"NO ({result['diffs']:.0f} differ)",
        )
    console.print(table)
    return 0 if live["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
