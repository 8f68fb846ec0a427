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

from ftel.contract.models import StateWindow
from ftel.contract.states import STATE_ORDER, MachineState, MachineType, state_field
from ftel.plant.layout import dump_plant
from ftel.security.identities import Role
from ftel.stack import LocalStack
from ftel.storage.lineproto import Point, encode_point
from ftel.storage.points import to_points
from ftel.storage.query import InfluxQuery
from ftel.storage.schema import Field, Measurement, Tag
from ftel.storage.writer import V1Writer, direct_write_policy, write_with_retry
from simulators.ledger import plant_ledger
from simulators.plant import generate_plant
from tests.ledger_check import differences, ledger_totals, stored_totals
from tests.support import Services, ftel_env, start_ftel, wait_ready, wait_until

console = Console()
RUNNING_MS = state_field(MachineState.RUNNING)
RAW_BATCH = 10_000
HOUR_MS = 3_600_000
WINDOW_MS = 60_000
MACHINES = 5_000  # of the raw ceiling's points
# What the pipeline stored of the machines (health points excluded): a field every point of each has.
MACHINE_POINTS = (
    (Measurement.STATE_TIME, RUNNING_MS),
    (Measurement.DOWNTIME, Field.DOWN_MS),
    (Measurement.TELEMETRY, Field.SPEED),
    (Measurement.MACHINE_STATE, Field.STATE_CODE),
    (Measurement.MACHINE_INFO, Field.MODEL),
    (Measurement.GATEWAY_HEARTBEAT, Field.SEQ),
)


def raw_ceiling(services: Services, points: int) -> float:
    # As ingest writes: the write-only InfluxDB user (authentication costs the same for every point).
    settings = services.settings("bench_raw", identity="ingest-1")
    writer = V1Writer(settings.influx)
    policy = direct_write_policy(settings.influx)
    base = (time.time_ns() // 1_000_000 // HOUR_MS - 48) * HOUR_MS
    # The pipeline's own points (state_time windows), built before timing.
    batches = []
    for start in range(0, points, RAW_BATCH):
        lines = [encode_point(window_point(i, base)) for i in range(start, min(points, start + RAW_BATCH))]
        batches.append("\n".join(lines).encode())
    began = time.perf_counter()
    for body in batches:
        write_with_retry(writer, body, policy)
    return points / (time.perf_counter() - began)


def window_point(i: int, base_ms: int) -> Point:
    """The ``i``-th machine-window's state_time point, made as ingest makes it from a gateway's window (the
    pipeline's own shape: 4 tags, 11 fields)."""
    start = base_ms + (i // MACHINES) * WINDOW_MS
    running = 50_000 + i % 7
    state_ms = dict.fromkeys(STATE_ORDER, 0) | {MachineState.RUNNING: running, MachineState.IDLE: WINDOW_MS - running}
    window = StateWindow(
        site="qinghe",
        workshop=f"ws{i % 10}",
        gateway_id=f"gw-ws{i % 10}",
        seq=i + 1,
        ts=start + WINDOW_MS,
        machine_type=MachineType.CARDING,
        machine_id=f"M{i % MACHINES}",
        window_start=start,
        window_ms=WINDOW_MS,
        state_ms=state_ms,
        units=1,
        defects=0,
    )
    return to_points(window)[0]


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
            rows = query.rows(f'SELECT count("{RUNNING_MS}") AS n FROM "{Measurement.STATE_TIME}"')
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
    points = sum(int(query.rows(f'SELECT count("{field}") AS n FROM "{m}"')[0]["n"]) for m, field in MACHINE_POINTS)
    with console.status("checking against the ledger…"):
        ledger = ledger_totals(plant_ledger(plant, start_ms=start, end_ms=end, window_ms=WINDOW_MS), Tag.WORKSHOP)
        diffs = differences(ledger, stored_totals(query, Tag.WORKSHOP, start, end))
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
