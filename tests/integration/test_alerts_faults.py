"""Faults injected into the simulator raise exactly one alert each, within seconds of simulated time of the
condition becoming true, and resolve when they clear; a fault-free shift raises none. Real Mosquitto and
InfluxDB; gateways run in-process (and one as a process that is killed, so the broker sends its real will).

The story (tests/fault_story.py) is the one tests/unit/test_alerts_replay.py replays without services over many
starts; here it runs once, at the pinned start (tests/sim_start.py), with the gateways paced together
(tests/sim_clock.py) so that load on the machine changes when things happen in wall time, not in plant time."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from alerts.engine import EngineState
from alerts.lifecycle import AlertRecord
from alerts.rules import AlertConfig, load_config
from alerts.store import Store
from alerts.worker import STORE_FILE, AlertWorker, WorkerThread
from ftel.contract.models import GatewayStatus, Heartbeat
from ftel.contract.topics import ALERT_PREFIX, GatewayKind, gateway_topic
from ftel.mqtt import paho_client
from ftel.plant.layout import Plant, default_plant
from ftel.security.identities import Role
from ftel.settings import Settings
from ftel.storage.query import InfluxQuery
from gateway.publisher import paho_link
from gateway.runner import DeliveryOptions, Gateway, GatewayTiming
from gateway.tracker import Origin
from simulators.clock import SimClock, wall_ms
from simulators.driver import SimulatedDriver
from simulators.machine import plant_models
from tests import sim_start
from tests.fault_story import (
    END_S,
    HEARTBEAT_MS,
    KILL_AT_S,
    KILLED_WORKSHOP,
    MAX_LATENCY_MS,
    MINUTE_S,
    RESTART_AT_S,
    all_resolved,
    by_problem,
    check_story,
    fault_plant,
    final,
)
from tests.sim_clock import Pace, PacedClock, PaceKeeper
from tests.support import Services, ftel_env, start_ftel, unique, wait_ready, wait_until

__all__ = ["MAX_LATENCY_MS", "MINUTE_S", "AlertTap", "gateway_process", "scenario", "worker_process"]

pytestmark = pytest.mark.integration
HOUR_MS = 3_600_000
# No ingest runs here, so nothing is ever confirmed: a stopping gateway need not wait for confirmations.
NO_DRAIN = DeliveryOptions(drain_stall_s=0.5)


# -- plumbing ------------------------------------------------------------------------------------------------


class AlertTap:
    """Every alert publication on the retained alert topics (a real MQTT subscriber), for one site; and what
    arrives on the topics it is told to ``watch``."""

    def __init__(self, settings: Settings, site: str) -> None:
        self.site = site
        self.records: list[AlertRecord] = []
        self.seen: dict[str, list[bytes]] = {}
        self._lock = threading.Lock()
        self._client = paho_client(settings.mqtt, client_id=settings.mqtt.username or "")
        self._client.on_message = self._on_message
        self._client.connect(settings.mqtt.host, settings.mqtt.port)
        self._client.subscribe(f"{ALERT_PREFIX}/+", qos=1)
        self._client.loop_start()

    def watch(self, topic: str) -> None:
        with self._lock:
            self.seen.setdefault(topic, [])
        self._client.subscribe(topic, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if not message.payload:
            return
        with self._lock:
            if message.topic in self.seen:
                self.seen[message.topic].append(bytes(message.payload))
                return
        record = AlertRecord.model_validate_json(message.payload)
        if record.site == self.site:
            with self._lock:
                self.records.append(record)

    def wait_for(self, topic: str, what: str, found: Callable[[bytes], bool], *, timeout_s: float = 120) -> None:
        def seen() -> bool:
            with self._lock:
                return any(found(payload) for payload in self.seen[topic])

        wait_until(seen, timeout_s=timeout_s, what=what, every_s=0.01)

    def snapshot(self) -> list[AlertRecord]:
        with self._lock:
            return list(self.records)

    def by_problem(self) -> dict[tuple[str, str], set[str]]:
        """(rule, subject) -> alert ids."""
        return by_problem(self.snapshot())

    def final(self) -> dict[str, AlertRecord]:
        """alert id -> its latest record (resolved wins over earlier states)."""
        return final(self.snapshot())

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@dataclass(frozen=True)
class Scenario:
    plant: Plant
    start_ms: int
    clock: SimClock
    timing: GatewayTiming

    def at(self, seconds: int) -> int:
        return self.start_ms + seconds * 1000

    def gateway(self, settings: Settings, workshop: str, *, pace: Pace | None = None) -> Gateway:
        models = plant_models(self.plant, start_ms=self.start_ms, workshop=workshop)
        ws = self.plant.workshop(workshop)
        return Gateway(
            Origin(self.plant.site, workshop, ws.gateway_id),
            [SimulatedDriver(m) for _, m in models],
            now_ms=PacedClock(self.clock, pace=pace, slot=self.slot(workshop), start_ms=self.start_ms).now_ms,
            timing=self.timing,
            link=paho_link(settings, ws.gateway_id),
            spool_max_messages=100_000,
            delivery=NO_DRAIN,
        )

    def slot(self, workshop: str) -> int:
        """A workshop's gateway's slot in a pace of this scenario (``paced``)."""
        return [w.id for w in self.plant.workshops].index(workshop)

    def wait_for_sim(self, sim_ms: int) -> None:
        wait_until(
            lambda: self.clock.now_ms() >= sim_ms,
            timeout_s=120,
            what=f"simulated time {sim_ms}",
            every_s=0.01,
        )


def scenario(plant: Plant, *, speedup: float, tick_s: float, lead_s: float = 0.0) -> Scenario:
    """Simulated time from the pinned start (tests/sim_start.py; always in the past, so a run never catches up
    with the wall clock), running from ``lead_s`` ahead: gateway processes need that long to start."""
    start = sim_start.start_ms(span_ms=24 * HOUR_MS)
    clock = SimClock(start, speedup, wall_ms() + int(lead_s * 1000))
    timing = GatewayTiming(
        window_ms=60_000,
        telemetry_interval_ms=30_000,
        heartbeat_interval_ms=HEARTBEAT_MS,
        tick_s=tick_s,
        telemetry_spread=False,
    )
    return Scenario(plant, start, clock, timing)


@dataclass
class GatewayThreads:
    """In-process gateways, one thread each."""

    threads: list[threading.Thread]
    stop: threading.Event

    def join(self, timeout_s: float) -> None:
        for thread in self.threads:
            thread.join(timeout_s)
            assert not thread.is_alive(), f"{thread.name} still running after {timeout_s} s"

    def close(self) -> None:
        """Stop them (a failed test must not leave gateways connected under identities the next test uses)."""
        self.stop.set()
        for thread in self.threads:
            thread.join(60)


def run_gateways(
    sc: Scenario, settings: Settings, workshops: list[str], end_ms: int, *, pace: Pace | None = None
) -> GatewayThreads:
    """Each workshop's gateway in a thread, watching from the start. Each is built in its own thread (its
    in-memory spool is SQLite, bound to the thread that opens it)."""
    stop = threading.Event()

    def run(workshop: str) -> None:
        sc.gateway(settings, workshop, pace=pace).run(stop, end_ms=end_ms, first_read_ms=sc.start_ms)

    threads = [
        threading.Thread(target=run, args=(workshop,), name=f"gateway-{workshop}", daemon=True)
        for workshop in workshops
    ]
    for thread in threads:
        thread.start()
    return GatewayThreads(threads, stop)


@contextlib.contextmanager
def paced(services: Services, database: str, sc: Scenario, tmp_path: Path) -> Iterator[Pace]:
    """A pace for the scenario's gateways (slot i: workshop i of the plant), kept while the block runs."""
    plant = sc.plant
    pace = Pace.create(tmp_path / "pace", slots=len(plant.workshops), start_ms=sc.start_ms)
    identity = services.grant(unique("pace"), Role.SUPERVISOR)
    keeper = PaceKeeper(
        services.settings(database, identity=identity).mqtt,
        site=plant.site,
        pace=pace,
        slots={w.gateway_id: slot for slot, w in enumerate(plant.workshops)},
    )
    try:
        yield pace
    finally:
        keeper.close()


def alert_config(tmp_path: Path, **worker: object) -> AlertConfig:
    config = load_config()
    options = config.worker.model_copy(update={"group": unique("alerts"), "state_dir": tmp_path / "state", **worker})
    return config.model_copy(update={"worker": options})


@pytest.fixture
def closing() -> Iterator[contextlib.ExitStack]:
    """What a test opens for its whole length (closed after it, whatever happens)."""
    with contextlib.ExitStack() as opened:
        yield opened


@pytest.fixture
def tap_factory(services: Services) -> Iterator[list[AlertTap]]:
    taps: list[AlertTap] = []
    yield taps
    for tap in taps:
        tap.close()


# A child process running one workshop's gateway on the same simulated clock, so it can be SIGKILLed. It finds
# its identity in the credentials file named by the environment (tests.support.ftel_env).
GATEWAY_CHILD = """
import logging, sys, threading, time
from pathlib import Path
from ftel.settings import Settings
from gateway.publisher import paho_link
from gateway.runner import DeliveryOptions, Gateway, GatewayTiming
from gateway.tracker import Origin
from simulators.clock import SimClock
from simulators.driver import SimulatedDriver
from simulators.machine import plant_models
from ftel.plant.layout import Plant
from tests.sim_clock import Pace, PacedClock
plant_json, workshop, start, speedup, anchor, end, first, pace, slots, slot, hold = sys.argv[1:12]
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
plant = Plant.model_validate_json(open(plant_json).read())
clock = PacedClock(
    SimClock(int(start), float(speedup), int(anchor)),
    pace=Pace(Path(pace), int(slots)) if pace != "-" else None,
    slot=int(slot),
    start_ms=int(first) if first != "-" else None,
    hold_at_ms=int(hold) if hold != "-" else None,
)
# Joining a run under way: not before the others have come near enough to read its start.
while first != "-" and (clock.allowed_ms() or int(first)) < int(first):
    time.sleep(0.005)
models = plant_models(plant, start_ms=int(start), workshop=workshop)
ws = plant.workshop(workshop)
gateway = Gateway(Origin(plant.site, workshop, ws.gateway_id), [SimulatedDriver(m) for _, m in models],
                  now_ms=clock.now_ms, timing=GatewayTiming(60000, 30000, 10000, 0.005, False),
                  link=paho_link(Settings(), ws.gateway_id), spool_max_messages=100000,
                  delivery=DeliveryOptions(drain_stall_s=0.5))
print("gateway child up", flush=True)
gateway.run(threading.Event(), end_ms=int(end), first_read_ms=int(first) if first != "-" else None)
"""


def gateway_process(
    sc: Scenario,
    settings: Settings,
    workshop: str,
    *,
    end_ms: int,
    plant_file: Path,
    first_read_ms: int | None,
    pace: Pace | None = None,
    hold_at_ms: int | None = None,
) -> subprocess.Popen[bytes]:
    """``workshop``'s gateway in a process of its own, watching from ``first_read_ms`` (None: from when it
    starts), paced with the run's others by ``pace`` (when they let it read ``first_read_ms``, it starts).
    ``hold_at_ms``: its time stops there (until it is killed). Its output goes to gateway-<workshop>.log beside
    ``plant_file``."""

    def arg(value: int | None) -> str:
        return "-" if value is None else str(value)

    plant_file.write_text(sc.plant.model_dump_json())
    args = [
        str(plant_file),
        workshop,
        str(sc.start_ms),
        str(sc.clock.speedup),
        str(sc.clock.anchor_wall_ms),
        str(end_ms),
        arg(first_read_ms),
        str(pace.path) if pace else "-",
        str(pace.slots) if pace else "0",
        str(sc.slot(workshop)),
        arg(hold_at_ms),
    ]
    with plant_file.with_name(f"gateway-{workshop}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", GATEWAY_CHILD, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=ftel_env(settings, PYTHONPATH=str(Path(__file__).resolve().parents[2])),
        )


def test_each_injected_fault_raises_one_alert_that_resolves(
    services: Services, database: str, tmp_path: Path, tap_factory: list[AlertTap], closing: contextlib.ExitStack
) -> None:
    site = unique("alr")
    plant = fault_plant(site)
    services.grant_plant(plant)
    # Gateways find their identities in the credentials file; the worker and the tap connect as their own.
    settings = services.settings(database, site=site)
    worker_settings = services.settings(database, site=site, identity=services.grant(unique("alerts"), Role.ALERTS))
    tap = AlertTap(services.settings(database, identity=services.grant(unique("tap"), Role.SUPERVISOR)), site)
    tap_factory.append(tap)
    spare = plant.workshop(KILLED_WORKSHOP)
    beats = gateway_topic(site, spare.id, spare.gateway_id, GatewayKind.HEARTBEAT)
    status = gateway_topic(site, spare.id, spare.gateway_id, GatewayKind.STATUS)
    tap.watch(beats)
    tap.watch(status)
    worker = AlertWorker(worker_settings, alert_config(tmp_path))
    thread = WorkerThread(worker).start()
    wait_until(worker.subscribed.is_set, timeout_s=30, what="the alert worker's subscriptions")
    sc = scenario(plant, speedup=300, tick_s=0.005)
    end, kill, restart = sc.at(END_S), sc.at(KILL_AT_S), sc.at(RESTART_AT_S)
    # Yarn and knit in threads, the spare in a process (slots 0, 1, 2 of the pace).
    pace = closing.enter_context(paced(services, database, sc, tmp_path))
    spare_slot = sc.slot(spare.id)
    gateways = run_gateways(sc, settings, ["yarn", "knit"], end, pace=pace)
    closing.callback(gateways.close)

    def spare_process(**when: int | None) -> subprocess.Popen[bytes]:
        plant_file = tmp_path / "plant.json"
        return gateway_process(sc, settings, spare.id, end_ms=end, plant_file=plant_file, pace=pace, **when)

    child = spare_process(first_read_ms=sc.start_ms, hold_at_ms=kill)
    try:
        # The spare's time stops at the kill: once its heartbeat of that moment is out, no clean death, SIGKILL
        # (the broker publishes its last will). The rest of the plant waits for the will, then runs on until the
        # restart, where it waits for the spare's new process (already started: a process start takes no plant
        # time), which watches from there.
        tap.wait_for(beats, "the spare's last heartbeat", lambda p: Heartbeat.model_validate_json(p).ts >= kill)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        tap.wait_for(status, "the spare's last will", lambda p: GatewayStatus.model_validate_json(p).will)
        pace.set(spare_slot, restart)
        child = spare_process(first_read_ms=restart)
        gateways.join(120)
        assert child.wait(120) == 0
        wait_until(lambda: all_resolved(tap.snapshot()), timeout_s=60, what="every injected fault's alert to resolve")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        thread.stop()

    records = tap.snapshot()
    latest = check_story(records, sc.start_ms)
    print("alert latency (simulated ms):", {f"{k[0]}/{k[1]}": r.fired_ms - r.condition_ms for k, r in latest.items()})

    # The maintenance board reads the same alerts from InfluxDB: a firing and a resolved point each.
    query = InfluxQuery(services.admin(database).influx)

    def stored() -> dict[str, set[str]]:
        rows = query.rows('SELECT "alert_id", "status" FROM "alerts"')
        out: dict[str, set[str]] = {}
        for row in rows:
            out.setdefault(row["alert_id"], set()).add(row["status"])
        return out

    ids = {r.alert_id for r in latest.values()}
    wait_until(
        lambda: {k: v for k, v in stored().items() if k in ids} == {key: {"firing", "resolved"} for key in ids},
        timeout_s=30,
        what="alerts measurement in InfluxDB",
    )


def worker_process(
    settings: Settings, tmp_path: Path, group: str, log: Path, rules: Path | None = None
) -> subprocess.Popen[bytes]:
    """`ftel alerts run` as its own process, as deployed."""
    extra = ["--rules", str(rules)] if rules else []
    return start_ftel(
        ["alerts", "run", "--state-dir", str(tmp_path / "state"), "--group", group, *extra],
        ftel_env(settings),
        log,
    )


def worker_clock(tmp_path: Path) -> int:
    """The engine clock the worker last committed (read from its store)."""
    path = tmp_path / "state" / STORE_FILE
    if not path.exists():
        return 0
    store = Store(path)
    try:
        snapshot = store.snapshot()
    finally:
        store.close()
    return EngineState.model_validate_json(snapshot).clock_ms if snapshot else 0


def test_fault_free_shift_raises_no_alert(
    services: Services, database: str, tmp_path: Path, tap_factory: list[AlertTap], closing: contextlib.ExitStack
) -> None:
    site = unique("clean")
    plant = default_plant(site)
    services.grant_plant(plant)
    settings = services.settings(database, site=site)
    worker_settings = services.settings(database, site=site, identity=services.grant(unique("alerts"), Role.ALERTS))
    tap = AlertTap(services.settings(database, identity=services.grant(unique("tap"), Role.SUPERVISOR)), site)
    tap_factory.append(tap)
    log = tmp_path / "worker.log"
    # Every gateway and the worker in its own process, as deployed, the gateways paced together.
    worker = worker_process(worker_settings, tmp_path, unique("alerts"), log)
    gateways: list[subprocess.Popen[bytes]] = []
    try:
        wait_ready(log)
        sc = scenario(plant, speedup=1000, tick_s=0.005)
        end = sc.at(8 * 3600)
        pace = closing.enter_context(paced(services, database, sc, tmp_path))
        gateways = [
            gateway_process(
                sc,
                settings,
                w.id,
                end_ms=end,
                plant_file=tmp_path / "plant.json",
                first_read_ms=sc.start_ms,
                pace=pace,
            )
            for w in plant.workshops
        ]
        for g in gateways:
            assert g.wait(300) == 0
        wait_until(lambda: worker_clock(tmp_path) >= end, timeout_s=60, what="the worker to see the shift end")
    finally:
        for g in gateways:
            if g.poll() is None:
                g.kill()
                g.wait(10)
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert worker.returncode == 0, log.read_text()
    assert tap.snapshot() == [], f"simulation start {sc.start_ms}"
