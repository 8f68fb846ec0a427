"""Faults injected into the simulator raise exactly one alert each, within seconds of simulated time of the
condition becoming true, and resolve when they clear; a fault-free shift raises none. Real Mosquitto and
InfluxDB; gateways run in-process (and one as a process that is killed, so the broker sends its real will)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from alerts.engine import EngineState
from alerts.lifecycle import AlertRecord, Status
from alerts.rules import AlertConfig, load_config
from alerts.store import Store
from alerts.worker import STORE_FILE, AlertWorker, WorkerThread
from ftel.contract.states import MachineState, MachineType
from ftel.contract.topics import ALERT_PREFIX
from ftel.settings import Settings
from ftel.storage.query import InfluxQuery
from gateway.runner import Gateway, GatewayTiming
from gateway.tracker import Origin
from simulators.clock import SimClock, wall_ms
from simulators.driver import SimulatedDriver
from simulators.machine import plant_models
from simulators.plant import (
    InjectedAnomaly,
    InjectedServiceOverdue,
    InjectedState,
    MachineSpec,
    Plant,
    Workshop,
    default_plant,
)
from tests.support import Services, ftel_env, start_ftel, unique, wait_for_log, wait_until

pytestmark = pytest.mark.integration
HOUR_MS = 3_600_000
MINUTE_S = 60
# A heartbeat every 10 simulated seconds keeps the engine's clock moving; detection can lag by that much.
HEARTBEAT_MS = 10_000
MAX_LATENCY_MS = HEARTBEAT_MS + 2_000


# -- plumbing ------------------------------------------------------------------------------------------------


class AlertTap:
    """Every alert publication on the retained alert topics (a real MQTT subscriber), for one site."""

    def __init__(self, settings: Settings, site: str) -> None:
        self.site = site
        self.records: list[AlertRecord] = []
        self._lock = threading.Lock()
        self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.on_message = self._on_message
        self._client.connect(settings.mqtt.host, settings.mqtt.port)
        self._client.subscribe(f"{ALERT_PREFIX}/+", qos=1)
        self._client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if not message.payload:
            return
        record = AlertRecord.model_validate_json(message.payload)
        if record.site == self.site:
            with self._lock:
                self.records.append(record)

    def snapshot(self) -> list[AlertRecord]:
        with self._lock:
            return list(self.records)

    def by_problem(self) -> dict[tuple[str, str], set[str]]:
        """(rule, subject) -> alert ids."""
        out: dict[tuple[str, str], set[str]] = {}
        for r in self.snapshot():
            out.setdefault((r.rule, r.subject), set()).add(r.alert_id)
        return out

    def final(self) -> dict[str, AlertRecord]:
        """alert id -> its latest record (resolved wins over earlier states)."""
        order = {Status.FIRING: 0, Status.ACKNOWLEDGED: 1, Status.RESOLVED: 2}
        out: dict[str, AlertRecord] = {}
        for r in self.snapshot():
            if r.alert_id not in out or order[r.status] >= order[out[r.alert_id].status]:
                out[r.alert_id] = r
        return out

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

    def gateway(self, settings: Settings, workshop: str) -> Gateway:
        models = plant_models(self.plant, start_ms=self.start_ms, workshop=workshop)
        ws = self.plant.workshop(workshop)
        return Gateway(
            Origin(self.plant.site, workshop, ws.gateway_id),
            [SimulatedDriver(m) for _, m in models],
            now_ms=self.clock.now_ms,
            timing=self.timing,
            mqtt_settings=settings.mqtt,
            spool_max_messages=100_000,
        )

    def wait_for_sim(self, sim_ms: int) -> None:
        wait_until(
            lambda: self.clock.now_ms() >= sim_ms,
            timeout_s=120,
            what=f"simulated time {sim_ms}",
            every_s=0.01,
        )


def scenario(plant: Plant, *, speedup: float, tick_s: float, hours_back: int = 10, lead_s: float = 0.0) -> Scenario:
    """Simulated time from hours in the past (so a run never catches up with the wall clock), running from
    ``lead_s`` ahead: gateway processes need that long to start, and one that starts late would stamp its
    birth well after the first readings of the others."""
    now = wall_ms()
    start = (now // HOUR_MS - hours_back) * HOUR_MS
    clock = SimClock(start, speedup, now + int(lead_s * 1000))
    timing = GatewayTiming(
        window_ms=60_000, telemetry_interval_ms=30_000, heartbeat_interval_ms=HEARTBEAT_MS, tick_s=tick_s
    )
    return Scenario(plant, start, clock, timing)


def run_gateways(sc: Scenario, settings: Settings, workshops: list[str], end_ms: int) -> list[threading.Thread]:
    threads = []
    for workshop in workshops:
        gateway = sc.gateway(settings, workshop)
        stop = threading.Event()
        thread = threading.Thread(
            target=gateway.run,
            args=(stop,),
            kwargs={"end_ms": end_ms, "first_read_ms": sc.start_ms},
            daemon=True,
        )
        thread.start()
        threads.append(thread)
    return threads


def alert_config(tmp_path: Path, **worker: object) -> AlertConfig:
    config = load_config()
    options = config.worker.model_copy(update={"group": unique("alerts"), "state_dir": tmp_path / "state", **worker})
    return config.model_copy(update={"worker": options})


@pytest.fixture
def tap_factory(services: Services) -> Iterator[list[AlertTap]]:
    taps: list[AlertTap] = []
    yield taps
    for tap in taps:
        tap.close()


# A child process running one workshop's gateway on the same simulated clock, so it can be SIGKILLed.
GATEWAY_CHILD = """
import sys, threading
from simulators.clock import SimClock
from simulators.driver import SimulatedDriver
from simulators.machine import plant_models
from simulators.plant import Plant
from gateway.runner import Gateway, GatewayTiming
from gateway.tracker import Origin
from ftel.settings import MqttSettings
plant_json, workshop, start, speedup, anchor, end, port, first = sys.argv[1:9]
plant = Plant.model_validate_json(open(plant_json).read())
clock = SimClock(int(start), float(speedup), int(anchor))
models = plant_models(plant, start_ms=int(start), workshop=workshop)
ws = plant.workshop(workshop)
gateway = Gateway(Origin(plant.site, workshop, ws.gateway_id), [SimulatedDriver(m) for _, m in models],
                  now_ms=clock.now_ms, timing=GatewayTiming(60000, 30000, 10000, 0.005),
                  mqtt_settings=MqttSettings(host="127.0.0.1", port=int(port)), spool_max_messages=100000)
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
) -> subprocess.Popen[bytes]:
    plant_file.write_text(sc.plant.model_dump_json())
    args = [
        str(plant_file),
        workshop,
        str(sc.start_ms),
        str(sc.clock.speedup),
        str(sc.clock.anchor_wall_ms),
        str(end_ms),
        str(settings.mqtt.port),
        str(first_read_ms) if first_read_ms is not None else "-",
    ]
    return subprocess.Popen(
        [sys.executable, "-c", GATEWAY_CHILD, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )


# -- the faults ---------------------------------------------------------------------------------------------

OVERHEAT_AT_S, OVERHEAT_FOR_S = 5 * MINUTE_S, 10 * MINUTE_S
DOWN_AT_S, DOWN_FOR_S = 5 * MINUTE_S, 15 * MINUTE_S
BURST_AT_S, BURST_EVERY_S, BURST_STOPS = 5 * MINUTE_S, 60, 6
SERVICE_AT_S, SERVICE_FOR_S = 15 * MINUTE_S, 10 * MINUTE_S
KILL_AT_S, RESTART_AT_S = 10 * MINUTE_S, 20 * MINUTE_S
END_S = 30 * MINUTE_S


def fault_plant(site: str) -> Plant:
    def spec(machine_id: str, machine_type: MachineType) -> MachineSpec:
        return MachineSpec(id=machine_id, type=machine_type)

    return Plant(
        site=site,
        workshops=(
            Workshop(
                id="yarn",
                name="Carding and spinning",
                gateway_id="gw-yarn",
                machines=(
                    spec("CARD-001", MachineType.CARDING),
                    spec("CARD-002", MachineType.CARDING),
                    spec("SPIN-001", MachineType.SPINNING),
                    spec("SPIN-002", MachineType.SPINNING),
                ),
            ),
            Workshop(
                id="knit",
                name="Flat knitting",
                gateway_id="gw-knit",
                machines=(spec("KNIT-001", MachineType.KNITTING), spec("KNIT-002", MachineType.KNITTING)),
            ),
            Workshop(
                id="spare",
                name="Spare carding",
                gateway_id="gw-spare",
                machines=(spec("CARD-101", MachineType.CARDING),),
            ),
        ),
        injected_anomalies=(
            InjectedAnomaly(
                machine_id="CARD-001", at_s=OVERHEAT_AT_S, duration_s=OVERHEAT_FOR_S, temperature_rise_c=40.0
            ),
        ),
        injected_states=(
            InjectedState(machine_id="SPIN-001", at_s=DOWN_AT_S, duration_s=DOWN_FOR_S, reason="ends_down"),
            *(
                InjectedState(
                    machine_id="KNIT-001",
                    at_s=BURST_AT_S + i * BURST_EVERY_S,
                    duration_s=20,
                    reason="yarn_break",
                )
                for i in range(BURST_STOPS)
            ),
            InjectedState(
                machine_id="CARD-002",
                at_s=SERVICE_AT_S,
                duration_s=SERVICE_FOR_S,
                state=MachineState.MAINTENANCE,
            ),
        ),
        injected_service_overdue=(InjectedServiceOverdue(machine_id="CARD-002", run_hours=170.0),),
    )


def test_each_injected_fault_raises_one_alert_that_resolves(  # noqa: PLR0915 (one end-to-end story)
    services: Services, database: str, tmp_path: Path, tap_factory: list[AlertTap]
) -> None:
    site = unique("alr")
    settings = services.settings(database, site=site)
    tap = AlertTap(settings, site)
    tap_factory.append(tap)
    worker = AlertWorker(settings, alert_config(tmp_path))
    thread = WorkerThread(worker).start()
    wait_until(worker.subscribed.is_set, timeout_s=30, what="the alert worker's subscriptions")
    sc = scenario(fault_plant(site), speedup=300, tick_s=0.005)
    end = sc.at(END_S)
    gateways = run_gateways(sc, settings, ["yarn", "knit"], end)
    spare = gateway_process(
        sc, settings, "spare", end_ms=end, plant_file=tmp_path / "plant.json", first_read_ms=sc.start_ms
    )
    try:
        sc.wait_for_sim(sc.at(KILL_AT_S))
        spare.send_signal(signal.SIGKILL)  # no clean death: the broker publishes the gateway's last will
        spare.wait(10)
        sc.wait_for_sim(sc.at(RESTART_AT_S))
        spare = gateway_process(
            sc, settings, "spare", end_ms=end, plant_file=tmp_path / "plant.json", first_read_ms=None
        )
        for g in gateways:
            g.join(120)
        spare.wait(120)

        expected = {
            ("overheat", "CARD-001"),
            ("machine-down", "SPIN-001"),
            ("repeated-stops", "KNIT-001"),
            ("service-overdue", "CARD-002"),
            ("gateway-offline", "gw-spare"),
        }

        def all_resolved() -> bool:
            final = tap.final()
            return {(r.rule, r.subject) for r in final.values() if r.status is Status.RESOLVED} >= expected

        wait_until(all_resolved, timeout_s=60, what=f"alerts for {sorted(expected)} to resolve")
    finally:
        if spare.poll() is None:
            spare.kill()
            spare.wait(10)
        thread.stop()

    problems = tap.by_problem()
    extra = [r for r in tap.snapshot() if (r.rule, r.subject) not in expected]
    assert set(problems) == expected, f"unexpected alerts: {extra} (simulation start {sc.start_ms})"
    repeated = {
        k: [
            (r.status.value, r.started_ms - sc.start_ms, r.fired_ms - sc.start_ms, r.resolved_ms)
            for r in tap.snapshot()
            if (r.rule, r.subject) == k
        ]
        for k, ids in problems.items()
        if len(ids) > 1
    }
    assert not repeated, repeated
    final = {(r.rule, r.subject): r for r in tap.final().values()}
    latency = {key: r.fired_ms - r.condition_ms for key, r in final.items()}
    print("alert latency (simulated ms):", json.dumps({f"{k[0]}/{k[1]}": v for k, v in latency.items()}))
    assert all(0 <= ms <= MAX_LATENCY_MS for ms in latency.values()), latency

    # When each condition became true, by what was injected.
    down = final[("machine-down", "SPIN-001")]
    assert down.started_ms <= sc.at(DOWN_AT_S)
    assert down.condition_ms == down.started_ms + 12 * 60_000
    assert down.resolved_ms == sc.at(DOWN_AT_S + DOWN_FOR_S)
    heat = final[("overheat", "CARD-001")]
    assert heat.started_ms == sc.at(OVERHEAT_AT_S)
    assert heat.condition_ms == sc.at(OVERHEAT_AT_S + 3 * MINUTE_S)
    assert (
        sc.at(OVERHEAT_AT_S + OVERHEAT_FOR_S) <= (heat.resolved_ms or 0) <= sc.at(OVERHEAT_AT_S + OVERHEAT_FOR_S + 30)
    )
    burst = final[("repeated-stops", "KNIT-001")]
    assert burst.detail == "yarn_break"
    assert burst.condition_ms <= sc.at(BURST_AT_S + 4 * BURST_EVERY_S)
    service = final[("service-overdue", "CARD-002")]
    assert service.started_ms == sc.start_ms
    assert service.resolved_ms == sc.at(SERVICE_AT_S)
    offline = final[("gateway-offline", "gw-spare")]
    assert sc.at(KILL_AT_S - 15) <= offline.started_ms <= sc.at(KILL_AT_S + 5)
    # Resolved by the restarted gateway's birth: a process start later, in simulated minutes at this speed-up.
    assert sc.at(RESTART_AT_S) <= (offline.resolved_ms or 0) <= sc.at(RESTART_AT_S + 5 * MINUTE_S)

    # The maintenance board reads the same alerts from InfluxDB: a firing and a resolved point each.
    query = InfluxQuery(settings.influx)

    def stored() -> dict[str, set[str]]:
        rows = query.rows('SELECT "alert_id", "status" FROM "alerts"')
        out: dict[str, set[str]] = {}
        for row in rows:
            out.setdefault(row["alert_id"], set()).add(row["status"])
        return out

    ids = {r.alert_id for r in final.values()}
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
    services: Services, database: str, tmp_path: Path, tap_factory: list[AlertTap]
) -> None:
    site = unique("clean")
    settings = services.settings(database, site=site)
    plant = default_plant(site)
    tap = AlertTap(settings, site)
    tap_factory.append(tap)
    log = tmp_path / "worker.log"
    # Every gateway and the worker in its own process, as deployed: at a speed-up of 1000 a few milliseconds
    # of thread scheduling are simulated seconds, which one shared interpreter would add to each gateway.
    worker = worker_process(settings, tmp_path, unique("alerts"), log)
    gateways: list[subprocess.Popen[bytes]] = []
    try:
        wait_for_log(log, "subscribed")
        sc = scenario(plant, speedup=1000, tick_s=0.005, hours_back=12, lead_s=2.0)
        end = sc.at(8 * 3600)
        gateways = [
            gateway_process(
                sc, settings, w.id, end_ms=end, plant_file=tmp_path / "plant.json", first_read_ms=sc.start_ms
            )
            for w in plant.workshops
        ]
        for g in gateways:
            g.wait(120)
        wait_until(lambda: worker_clock(tmp_path) >= end, timeout_s=60, what="the worker to see the shift end")
    finally:
        for g in gateways:
            if g.poll() is None:
                g.kill()
                g.wait(10)
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert worker.returncode == 0, log.read_text()
    assert tap.snapshot() == []
