"""Benchmark (not a test): how fast the alert worker drains a backlog from its persistent session, against the
bare MQTT client's ceiling (bench/drain.py's), through the real broker and its real sqlite store.

The worker (in this process, with its real ports) subscribes once and stops; a backlog of telemetry samples (the
bulk of what its rules read: it does not subscribe to windows) is then queued for its session and for a bare
client's; each drains it. Printed: the rates, their ratio, and that the
worker saw every message once.

    python bench/alert_drain.py [--messages 50000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from alerts import worker as alert_worker
from alerts.rules import load_config
from bench.drain import MACHINES, bare_drain, first_window, publish, session
from ftel.contract import MachineKind, Telemetry, encode, machine_topic
from ftel.contract.states import MachineState, MachineType
from ftel.contract.topics import data_filter
from ftel.security.identities import Role
from ftel.stack import LocalStack
from tests.support import Services, unique, wait_until

console = Console()


def telemetry_backlog(count: int, site: str) -> list[tuple[str, bytes]]:
    """``count`` telemetry samples of MACHINES knitting machines, 30 s apart, as gateways send them."""
    base = first_window(count, MACHINES)
    out = []
    for i in range(count):
        gateway, machine = i % MACHINES // 500, f"K{i % MACHINES:05d}"
        sample = Telemetry(
            site=site,
            workshop=f"ws{gateway:03d}",
            gateway_id=f"gw-{gateway:03d}",
            seq=i // MACHINES + 1,
            ts=base + i // MACHINES * 30_000,
            machine_type=MachineType.KNITTING,
            machine_id=machine,
            state=MachineState.RUNNING,
            speed=0.8,
            temperature=41.5,
            units_total=i // MACHINES,
            defects_total=0,
            run_ms_since_service=i // MACHINES * 30_000,
        )
        out.append((machine_topic(site, sample.workshop, "knitting", machine, MachineKind.TELEMETRY), encode(sample)))
    return out


def drain(module: Any, settings: Any, state_dir: Path, count: int, publish_backlog: Any) -> float:
    """Messages per second the worker of ``module`` (alerts.worker, or another version of it) takes from a
    backlog of ``count`` queued while it was away."""
    config = load_config()
    config = config.model_copy(update={"worker": config.worker.model_copy(update={"state_dir": state_dir})})
    first = module.WorkerThread(module.AlertWorker(settings, config)).start()
    wait_until(first.worker.subscribed.is_set, timeout_s=60, what="the worker subscribed", every_s=0.02)
    first.stop()  # its session now queues the backlog
    publish_backlog()
    worker = module.AlertWorker(settings, config)
    began = time.perf_counter()
    thread = module.WorkerThread(worker).start()
    wait_until(lambda: worker.messages_seen >= count, timeout_s=1200, what="every message seen", every_s=0.05)
    rate = count / (time.perf_counter() - began)
    thread.stop()
    if worker.messages_seen != count:
        raise SystemExit(f"the worker saw {worker.messages_seen} messages, not {count}")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalStack.on_free_ports(Path(tmp) / "stack") as stack:
        services = Services(stack)
        database, site = unique("adrain"), unique("a")
        admin = services.admin(database)
        services.grant("bench-bare", Role.SUPERVISOR)
        bare_mqtt = services.settings(database, identity="bench-bare").mqtt
        bare = session(bare_mqtt, "bench-bare", data_filter(site), manual_ack=True)
        bare.loop_stop()
        bare.disconnect()
        identity = services.grant(unique("alerts"), Role.ALERTS)
        settings = services.settings(database, site=site, identity=identity)
        messages = telemetry_backlog(args.messages, site)

        def publish_backlog() -> None:
            with console.status(f"queueing {len(messages):,} messages for both…"):
                publish(admin.mqtt, messages)

        rate = drain(alert_worker, settings, Path(tmp) / "alerts", len(messages), publish_backlog)
        with console.status("bare client draining…"):
            bare_rate = bare_drain(bare_mqtt, "bench-bare", data_filter(site), len(messages))
        table = Table(title=f"Draining one backlog of {len(messages):,} telemetry samples")
        table.add_column("consumer")
        table.add_column("messages/s", justify="right")
        table.add_row("bare paho client (ack only)", f"{bare_rate:,.0f}")
        table.add_row("alert worker (engine, sqlite commits, acks)", f"{rate:,.0f}")
        table.add_row("ratio", f"{rate / bare_rate:.2f}")
        console.print(table)


if __name__ == "__main__":
    main()
