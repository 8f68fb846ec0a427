"""Benchmark (not a test): how long gateways wait to hear what is stored while an ingest worker drains a backlog.

One backlog of contract-valid window messages from a few gateways (each its own sequence numbers) is queued in
the broker for the worker's persistent session while it is away; then the worker (`IngestWorker` as `ftel ingest`
runs it, in a process of its own) drains it while a subscriber on the gateways' confirmation topics notes when
each sequence number is confirmed. The worker's process notes when each batch was stored (the moment it is
handed back for release) and when it took the backlog's last message. Printed per code (this checkout, and a
baseline checkout with ``--baseline DIR``, e.g. ``git archive <commit> | tar -x -C DIR``): the drain's rate,
confirmation latency (stored → the confirmation at the subscriber) p50 / p99 / max over the messages stored before
the last one was taken (during the drain) and over all, how much of what was stored by then was confirmed by
then, and the confirmation messages sent; then this code's figures as ratios to the baseline's.

    python bench/confirm.py [--messages 200000] [--gateways 4] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# The code measured: this checkout, or (in a worker's process of the baseline) the baseline's.
sys.path.insert(0, os.environ.get("BENCH_CODE") or str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as paho
from rich.console import Console
from rich.table import Table

from ftel.contract import Confirmation
from ftel.contract.topics import CONFIRM_PREFIX, data_filter, shared
from ftel.mqtt import paho_client
from ftel.security.credentials import with_identity
from ftel.security.identities import Role
from ftel.settings import MqttSettings, Settings
from ftel.stack import LocalStack
from tests.support import Services, ftel_env, unique, wait_until

console = Console()
WINDOW_MS = 60_000
MACHINES_PER_GATEWAY = 500
WORKER = "ingest-1"


def backlog(count: int, site: str, gateways: int) -> list[tuple[str, bytes]]:
    """``count`` distinct one-minute windows from ``gateways`` gateways of MACHINES_PER_GATEWAY knitting machines
    each, interleaved, every gateway numbering its own messages 1, 2, 3, … in the order they are sent."""
    from bench.drain import first_window, window_message

    machines = gateways * MACHINES_PER_GATEWAY
    base = first_window(count, machines)
    out = []
    for i in range(count):
        start = base + i // machines * WINDOW_MS
        out.append(window_message(site, i % gateways, i // gateways + 1, f"K{i % machines:05d}", start))
    return out


# -- the worker's process ------------------------------------------------------------------------------------


def run_worker(out: Path, expect: int, stop_file: Path) -> None:
    """Run the worker on the settings of the environment until ``stop_file`` exists; write to ``out`` when each
    batch was stored (its senders) and when the backlog's last message was taken."""
    from ingest.worker import IngestWorker

    settings = Settings()
    worker = IngestWorker(with_identity(settings, settings.ingest.worker_id))
    stored: list[tuple[float, list[tuple[str, int]]]] = []
    last_taken = [0.0]
    release = worker._release  # noqa: SLF001 (the moment a batch is stored, whatever the code does after)

    def timed_release(result):  # type: ignore[no-untyped-def]
        stored.append((time.time(), [(s.gateway_id, s.seq) for s in result.batch.senders]))
        release(result)

    worker._release = timed_release  # type: ignore[method-assign]  # noqa: SLF001
    transport = worker._transport  # noqa: SLF001
    take = transport.on_message
    assert take is not None

    def counted(topic: str, payload: bytes, mid: int, qos: int) -> None:
        take(topic, payload, mid, qos)
        if worker.stats.messages_in == expect:
            last_taken[0] = time.time()

    transport.on_message = counted
    stop = threading.Event()

    def watch() -> None:
        while not stop_file.exists():
            time.sleep(0.2)
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    worker.run(stop)
    out.write_text(json.dumps({"stored": stored, "last_taken": last_taken[0]}))


# -- the bench -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    code: str
    rate: float  # messages stored per second, first batch to last
    during_p50_ms: float  # stored before the last message was taken
    during_p99_ms: float
    during_max_ms: float
    all_p50_ms: float
    all_p99_ms: float
    confirmed_by_last_take: float  # share of what was stored by then that was confirmed by then
    confirmations: int  # confirmation messages received


class Confirmations:
    """A subscriber on the site's confirmation topics: when each (gateway, seq) was first confirmed."""

    def __init__(self, mqtt: MqttSettings, site: str) -> None:
        self.first: dict[tuple[str, int], float] = {}
        self.messages = 0
        self._client = paho_client(mqtt, client_id="")
        self._client.on_message = self._on_message
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *a: subscribed.set()
        self._client.on_connect = lambda c, *a: c.subscribe(f"{CONFIRM_PREFIX}/{site}/#", qos=1)
        self._client.connect(mqtt.host, mqtt.port)
        self._client.loop_start()
        subscribed.wait(10)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        now = time.time()
        self.messages += 1
        confirmation = Confirmation.model_validate_json(message.payload)
        for seq in confirmation.seqs():
            self.first.setdefault((confirmation.gateway_id, seq), now)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else float("nan")


def measure(code: Path | None, count: int, gateways: int, tmp: Path) -> Figures:
    with LocalStack.on_free_ports(tmp / "stack") as stack:
        services = Services(stack)
        database, site, group = unique("confirm"), unique("c"), unique("g")
        admin = services.admin(database)
        services.grant(WORKER, Role.INGEST)
        env = ftel_env(
            services.settings(database),
            FTEL_INGEST__GROUP=group,
            FTEL_INGEST__WORKER_ID=WORKER,
            FTEL_INGEST__SESSION_EXPIRY_S="3600",
            FTEL_SITE=site,
        ) | ({"BENCH_CODE": str(code)} if code else {})
        # The worker's session and subscription exist before the backlog is queued for it.
        from bench.drain import publish, session

        worker_mqtt = services.settings(database, identity=WORKER).mqtt
        probe = session(worker_mqtt, WORKER, shared(group, data_filter(site)), manual_ack=True)
        probe.loop_stop()
        probe.disconnect()
        messages = backlog(count, site, gateways)
        with console.status(f"queueing {count:,} messages…"):
            publish(admin.mqtt, messages)
        confirmations = Confirmations(admin.mqtt, site)
        out, stop_file = tmp / "worker.json", tmp / "stop"
        with (tmp / "worker.log").open("ab") as log, console.status(f"{code or 'this code'}: draining…"):
            worker = subprocess.Popen(
                [sys.executable, __file__, "--run-worker", str(out), str(count), str(stop_file)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            wait_until(lambda: len(confirmations.first) >= count, timeout_s=1800, what="every message confirmed")
            stop_file.touch()
            worker.wait(120)
        confirmations.close()
        result = json.loads(out.read_text())
    last_taken = result["last_taken"]
    during, every = [], []
    stored_by_then = confirmed_by_then = 0
    for at, senders in result["stored"]:
        for gateway, seq in senders:
            latency = (confirmations.first[(gateway, seq)] - at) * 1000
            every.append(latency)
            if at <= last_taken:
                during.append(latency)
                stored_by_then += 1
                confirmed_by_then += confirmations.first[(gateway, seq)] <= last_taken
    times = [at for at, _ in result["stored"]]
    return Figures(
        code=str(code) if code else "this",
        rate=count / (max(times) - min(times)),
        during_p50_ms=percentile(during, 50),
        during_p99_ms=percentile(during, 99),
        during_max_ms=max(during, default=float("nan")),
        all_p50_ms=percentile(every, 50),
        all_p99_ms=percentile(every, 99),
        confirmed_by_last_take=confirmed_by_then / max(1, stored_by_then),
        confirmations=confirmations.messages,
    )


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--run-worker":
        run_worker(Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--gateways", type=int, default=4)
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout's directory, measured first")
    args = parser.parse_args()
    codes: list[Path | None] = [None] if args.baseline is None else [args.baseline.resolve(), None]
    figures = []
    for code in codes:
        with tempfile.TemporaryDirectory() as tmp:
            figures.append(measure(code, args.messages, args.gateways, Path(tmp)))
    table = Table(title=f"Confirmations while one worker drains {args.messages:,} messages of {args.gateways} gateways")
    table.add_column("")
    for f in figures:
        table.add_column(f.code if f.code == "this" else "baseline", justify="right")
    rows: list[tuple[str, Callable[[Figures], str]]] = [
        ("stored, messages/s", lambda f: f"{f.rate:,.0f}"),
        ("confirmation latency during the drain, p50 ms", lambda f: f"{f.during_p50_ms:,.0f}"),
        ("… p99 ms", lambda f: f"{f.during_p99_ms:,.0f}"),
        ("… max ms", lambda f: f"{f.during_max_ms:,.0f}"),
        ("confirmation latency, all, p50 / p99 ms", lambda f: f"{f.all_p50_ms:,.0f} / {f.all_p99_ms:,.0f}"),
        ("stored before the last message was taken: confirmed by then", lambda f: f"{f.confirmed_by_last_take:.1%}"),
        ("confirmation messages", lambda f: f"{f.confirmations:,}"),
    ]
    for name, cell in rows:
        table.add_row(name, *(cell(f) for f in figures))
    console.print(table)
    if len(figures) == 2:
        base, this = figures
        console.print(
            f"this code / baseline: rate {this.rate / base.rate:.2f}, latency during the drain p50 "
            f"{this.during_p50_ms / base.during_p50_ms:.2g} (1/{base.during_p50_ms / this.during_p50_ms:,.0f}), "
            f"p99 {this.during_p99_ms / base.during_p99_ms:.2g} (1/{base.during_p99_ms / this.during_p99_ms:,.0f})"
        )
        console.print(f"baseline: {args.baseline}")


if __name__ == "__main__":
    main()
