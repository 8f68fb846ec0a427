"""Benchmark (not a test): how fast an ingest worker drains a backlog, against the bare MQTT client's ceiling.

One backlog of contract-valid window messages is queued in the broker for two persistent sessions at once: a
bare paho-mqtt client that only acknowledges (manual ack, QoS 1: the ceiling of any Python MQTT consumer on
this machine) and the ingest worker(s) (`ftel ingest`, as deployed). Each drains the same messages; printed: the
rates, their ratio, the workers' peak memory and their resident memory at 0, 25, 50, 75 and 100 % of the
backlog stored, and that InfluxDB holds every message exactly once.

    python bench/drain.py [--messages 50000] [--processes 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from rich.console import Console
from rich.table import Table

from ftel.contract import MachineKind, StateWindow, encode, machine_topic
from ftel.contract.states import STATE_ORDER, MachineState, MachineType, state_field
from ftel.contract.topics import data_filter
from ftel.mqtt import paho_client
from ftel.security.identities import Role
from ftel.settings import MqttSettings, Settings
from ftel.stack import LocalStack
from ftel.storage.query import InfluxQuery
from ftel.storage.schema import Measurement
from tests.support import Services, ftel_env, start_ftel, unique, wait_ready

console = Console()
WINDOW_MS = 60_000
MACHINES = 5_000


def window_message(site: str, gateway: int, seq: int, machine: str, start: int) -> tuple[str, bytes]:
    """(topic, payload) of one knitting machine's one-minute window, sent by gateway ``gw-<gateway>`` of
    workshop ``ws<gateway>``."""
    state_ms = dict.fromkeys(STATE_ORDER, 0) | {MachineState.RUNNING: 50_000, MachineState.DOWN: 10_000}
    window = StateWindow(
        site=site,
        workshop=f"ws{gateway:03d}",
        gateway_id=f"gw-{gateway:03d}",
        seq=seq,
        ts=start + WINDOW_MS,
        machine_type=MachineType.KNITTING,
        machine_id=machine,
        window_start=start,
        window_ms=WINDOW_MS,
        state_ms=state_ms,
        down_ms_by_reason={"yarn_break": 10_000},
        stops_by_reason={"yarn_break": 1},
        units=3,
        defects=0,
    )
    topic = machine_topic(site, window.workshop, window.machine_type.value, machine, MachineKind.WINDOW)
    return topic, encode(window)


def first_window(count: int, machines: int) -> int:
    """The start of the first of ``count`` windows of ``machines`` machines, ending a few minutes ago."""
    now = time.time_ns() // 1_000_000
    return now - now % WINDOW_MS - (count // machines + 2) * WINDOW_MS


def backlog(count: int, site: str) -> list[tuple[str, bytes]]:
    """``count`` distinct windows of MACHINES knitting machines (one minute each), as gateways send them."""
    base = first_window(count, MACHINES)
    out = []
    for i in range(count):
        machine, minute = f"K{i % MACHINES:05d}", i // MACHINES
        out.append(window_message(site, i % MACHINES // 500, minute + 1, machine, base + minute * WINDOW_MS))
    return out


def session(mqtt: MqttSettings, client_id: str, topic_filter: str, *, manual_ack: bool) -> paho.Client:
    client = paho_client(mqtt, client_id=client_id)
    client.manual_ack_set(manual_ack)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = 65535
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_connect = lambda c, *a: c.subscribe(topic_filter, qos=1)
    client.connect(mqtt.host, mqtt.port, keepalive=60, clean_start=False, properties=properties)
    client.loop_start()
    subscribed.wait(10)
    return client


def bare_drain(mqtt: MqttSettings, client_id: str, topic_filter: str, count: int) -> float:
    received = 0
    done = threading.Event()
    started = [0.0]

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        nonlocal received
        if received == 0:
            started[0] = time.perf_counter()
        client.ack(message.mid, message.qos)
        received += 1
        if received >= count:
            done.set()

    client = paho_client(mqtt, client_id=client_id)
    client.manual_ack_set(True)
    client.on_message = on_message
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = 65535
    client.connect(mqtt.host, mqtt.port, keepalive=60, clean_start=False, properties=properties)
    client.loop_start()
    done.wait(600)
    elapsed = time.perf_counter() - started[0]
    client.loop_stop()
    client.disconnect()
    return received / elapsed


def memory_mib(pid: int, key: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (its peak) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


# Where in the drain (percent of the backlog stored) the workers' resident memory is read.
MARKS = (0, 25, 50, 75, 100)


def drain(procs: list[subprocess.Popen[bytes]], count: int, stored: Callable[[], int]) -> dict[int, list[float]]:
    """Wait until every message is stored; the workers' resident memory (MiB) as the stored count passes each
    mark (read every 0.2 s: a little past the mark)."""
    memory: dict[int, list[float]] = {}
    deadline = time.monotonic() + 1200
    while len(memory) < len(MARKS):
        done = stored()
        for mark in MARKS:
            if mark not in memory and done * 100 >= count * mark:
                memory[mark] = [memory_mib(p.pid, "VmRSS") for p in procs]
        if len(memory) < len(MARKS):
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for every window stored: {done:,} of {count:,}")
            time.sleep(0.2)
    return memory


PUBLISH_CHUNK = 10_000


def publish(mqtt: MqttSettings, messages: list[tuple[str, bytes]]) -> None:
    publisher = paho_client(mqtt, client_id="")
    publisher.connect(mqtt.host, mqtt.port)
    publisher.loop_start()
    # In chunks: the client queues a bounded number of messages (ftel.mqtt), and a backlog may be far larger.
    for first in range(0, len(messages), PUBLISH_CHUNK):
        infos = [publisher.publish(topic, payload, qos=1) for topic, payload in messages[first : first + PUBLISH_CHUNK]]
        for info in infos:
            info.wait_for_publish(60)
    publisher.loop_stop()
    publisher.disconnect()


def start_workers(workers: list[str], env: dict[str, str], logs: Path) -> list[subprocess.Popen[bytes]]:
    """The workers, started and connected (the wait is not part of any timing)."""
    procs = [start_ftel(["ingest", "--worker-id", w], env, logs / f"{w}.log") for w in workers]
    for w in workers:
        wait_ready(logs / f"{w}.log")
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
        p.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalStack.on_free_ports(Path(tmp) / "stack") as stack:
        services = Services(stack)
        database, site, group = unique("drain"), unique("d"), unique("g")
        admin: Settings = services.admin(database)
        workers = [f"ingest-{n}" for n in range(1, args.processes + 1)]
        for worker in workers:
            services.grant(worker, Role.INGEST)
        # The bare client is a reader of its own (the broker binds client ids to identities, and the publisher
        # below is admin). Both sessions exist before the backlog is published, so both queue all of it.
        services.grant("bench-bare", Role.SUPERVISOR)
        bare_mqtt = services.settings(database, identity="bench-bare").mqtt
        bare = session(bare_mqtt, "bench-bare", data_filter(site), manual_ack=True)
        bare.loop_stop()
        bare.disconnect()
        env = ftel_env(
            services.settings(database), FTEL_INGEST__GROUP=group, FTEL_SITE=site, FTEL_INGEST__SESSION_EXPIRY_S="3600"
        )
        logs = Path(tmp)
        stop_workers(start_workers(workers, env, logs))  # their sessions now queue the backlog too
        messages = backlog(args.messages, site)
        with console.status(f"queueing {len(messages):,} messages for both…"):
            publish(admin.mqtt, messages)
        with console.status("bare client draining…"):
            bare_rate = bare_drain(bare_mqtt, "bench-bare", data_filter(site), len(messages))
        query = InfluxQuery(admin.influx)

        def stored() -> int:
            running = state_field(MachineState.RUNNING)
            rows = query.rows(f'SELECT count("{running}") AS n FROM "{Measurement.STATE_TIME}"')
            return int(rows[0]["n"]) if rows else 0

        with console.status("ingest draining…"):
            procs = start_workers(workers, env, logs)
            began = time.perf_counter()  # from the moment the workers are connected, like the bare client
            memory = drain(procs, len(messages), stored)
            worker_rate = len(messages) / (time.perf_counter() - began)
            peaks = [memory_mib(p.pid, "VmHWM") for p in procs]
            stop_workers(procs)
        table = Table(title=f"Draining one backlog of {len(messages):,} window messages")
        table.add_column("consumer")
        table.add_column("messages/s", justify="right")
        table.add_row("bare paho client (ack only)", f"{bare_rate:,.0f}")
        table.add_row(f"ftel ingest × {args.processes} (stored in InfluxDB)", f"{worker_rate:,.0f}")
        table.add_row("ratio", f"{worker_rate / bare_rate:.2f}")
        table.add_row("worker peak memory", ", ".join(f"{p:.0f} MiB" for p in peaks))
        table.add_row("stored exactly once", "yes" if stored() == len(messages) else f"no: {stored()}")
        console.print(table)
        over = Table(title="Worker memory over the drain")
        over.add_column("backlog stored")
        for worker in workers:
            over.add_column(f"{worker} VmRSS", justify="right")
        for mark in MARKS:
            over.add_row(f"{mark} %", *(f"{mib:.0f} MiB" for mib in memory[mark]))
        console.print(over)


if __name__ == "__main__":
    main()
