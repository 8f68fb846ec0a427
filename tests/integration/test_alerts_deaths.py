"""A gateway that vanishes: ingest writes when it died (the alert worker, running beside it, judges the same
death for its alerts and writes nothing of it), so "state now" says its machines are OFFLINE from its last
message until its next birth re-states them (docs/delivery.md).
Real Mosquitto, InfluxDB, an ingest worker and `ftel alerts run` as processes; the gateway a process that is
SIGKILLed (the broker publishes its real last will) and started again."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from ftel.contract import ContractError, data_filter, decode
from ftel.contract.models import GatewayStatus, Heartbeat, Message, StateChange
from ftel.contract.states import MachineState
from ftel.mqtt import paho_client
from ftel.plant.layout import InjectedState, Plant
from ftel.security.identities import Role
from ftel.settings import Settings
from ftel.storage.query import InfluxQuery
from tests.integration.test_alerts_delivery import plant as delivery_plant
from tests.integration.test_alerts_faults import MINUTE_S, Scenario, gateway_process, scenario, worker_process
from tests.support import Services, ftel_env, start_ftel, stop_processes, unique, wait_ready, wait_until

pytestmark = pytest.mark.integration
KILL_AT_S = 3 * MINUTE_S
# Long enough to hold at the kill and again after the restart, whatever the waits in between take.
STOPPED_FOR_S = 240 * MINUTE_S
HEARTBEAT_MS = 30_000  # the gateway child's heartbeat interval: heartbeats fall on its multiples


def plant(site: str) -> Plant:
    """One workshop; at the kill and after the restart one machine is DOWN and one in MAINTENANCE."""
    return Plant(
        site=site,
        workshops=delivery_plant(site).workshops,  # the same yarn workshop as the delivery tests
        injected_states=(
            InjectedState(machine_id="SPIN-001", at_s=MINUTE_S, duration_s=STOPPED_FOR_S, reason="ends_down"),
            InjectedState(
                machine_id="CARD-002", at_s=MINUTE_S, duration_s=STOPPED_FOR_S, state=MachineState.MAINTENANCE
            ),
        ),
    )


class StreamTap:
    """Every message of the site's data and gateway topics (the alert worker's own filter), decoded, in the
    order the broker delivers them."""

    def __init__(self, settings: Settings, site: str) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._client = paho_client(settings.mqtt, client_id=settings.mqtt.username or "")
        self._client.on_message = self._on_message
        self._client.connect(settings.mqtt.host, settings.mqtt.port)
        self._client.subscribe(data_filter(site), qos=1)
        self._client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            _, decoded = decode(message.topic, bytes(message.payload))
        except ContractError:
            return
        with self._lock:
            self.messages.append(decoded)

    def snapshot(self) -> list[Message]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, what: str, found: Callable[[Message], bool]) -> Message:
        """The first message ``found`` accepts (waiting for it to arrive)."""
        return wait_until(lambda: next((m for m in self.snapshot() if found(m)), None), timeout_s=120, what=what)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def last_states(query: InfluxQuery, site: str) -> dict[str, tuple[int, str]]:
    """Each machine's last ``machine_state`` point: (time, state)."""
    rows = query.rows(f"SELECT last(\"state\") AS state FROM machine_state WHERE site = '{site}' GROUP BY machine_id")
    return {str(r["machine_id"]): (int(r["time"]), str(r["state"])) for r in rows}


def offline_points(query: InfluxQuery, site: str) -> dict[str, int]:
    """How many OFFLINE ``machine_state`` points each machine has."""
    rows = query.rows(
        f"SELECT count(state_code) AS n FROM machine_state WHERE site = '{site}' AND state = 'OFFLINE' "
        "GROUP BY machine_id"
    )
    return {str(r["machine_id"]): int(r["n"]) for r in rows}


def now_of_each(messages: list[Message], birth: GatewayStatus) -> dict[str, tuple[int, str]]:
    """What the gateway said last about each machine: its birth's re-statement, or a change after it."""
    now = {m: (birth.ts, state.state.value) for m, state in birth.states.items()}
    for message in messages:
        if isinstance(message, StateChange) and message.ts >= now[message.machine_id][0]:
            now[message.machine_id] = (message.ts, message.state.value)
    return now


def yarn_gateway(
    sc: Scenario, settings: Settings, tmp_path: Path, *, first_read_ms: int, hold_at_ms: int
) -> subprocess.Popen[bytes]:
    """The workshop's gateway as a process, watching from ``first_read_ms``; its time stops at ``hold_at_ms``."""
    end = sc.at(STOPPED_FOR_S)
    plant_file = tmp_path / "plant.json"
    return gateway_process(
        sc, settings, "yarn", end_ms=end, plant_file=plant_file, first_read_ms=first_read_ms, hold_at_ms=hold_at_ms
    )


def kill_when_held(
    sc: Scenario, settings: Settings, tmp_path: Path, tap: StreamTap, processes: list[subprocess.Popen[bytes]]
) -> int:
    """The workshop's gateway as a process whose time stops at the kill: once its heartbeat of that moment is
    out, SIGKILL (no clean death; the broker publishes its will). The time of its last message before the will."""
    kill = sc.at(KILL_AT_S)
    child = yarn_gateway(sc, settings, tmp_path, first_read_ms=sc.start_ms, hold_at_ms=kill)
    processes.append(child)
    tap.wait_for("the heartbeat at the kill", lambda m: isinstance(m, Heartbeat) and m.ts >= kill)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    will = tap.wait_for("the last will", lambda m: isinstance(m, GatewayStatus) and m.will)
    before = tap.snapshot()
    return max(m.ts for m in before[: before.index(will)] if m.gateway_id == "gw-yarn")


def test_a_vanished_gateway_s_machines_are_offline_from_its_last_message_until_its_next_birth(
    services: Services, database: str, tmp_path: Path
) -> None:
    site = unique("dth")
    services.grant_plant(plant(site))
    settings = services.settings(database, site=site)
    ingest_id = services.grant(unique("ingest"), Role.INGEST)
    worker_settings = services.settings(database, site=site, identity=services.grant(unique("alerts"), Role.ALERTS))
    tap = StreamTap(services.settings(database, identity=services.grant(unique("tap"), Role.SUPERVISOR)), site)
    query = InfluxQuery(services.admin(database).influx)
    env = ftel_env(settings, FTEL_INGEST__GROUP=database)
    ingest = start_ftel(["ingest", "--worker-id", ingest_id], env, tmp_path / "ingest.log")
    worker = worker_process(worker_settings, tmp_path, unique("alerts"), tmp_path / "worker.log")
    processes: list[subprocess.Popen[bytes]] = [ingest, worker]
    try:
        wait_ready(tmp_path / "ingest.log")
        wait_ready(tmp_path / "worker.log")
        sc = scenario(plant(site), speedup=30, tick_s=0.005, lead_s=3.0)
        kill = sc.at(KILL_AT_S)
        last_message_ms = kill_when_held(sc, settings, tmp_path, tap, processes)

        # Dead from its last message: every machine OFFLINE then, and the gateway offline.
        offline = dict.fromkeys(("CARD-001", "CARD-002", "SPIN-001"), (last_message_ms, "OFFLINE"))
        wait_until(lambda: last_states(query, site) == offline, timeout_s=60, what="OFFLINE at the last message")
        status = query.rows(f"SELECT last(\"online\") AS online FROM gateway_status WHERE site = '{site}'")
        assert [(r["time"], r["online"]) for r in status] == [(last_message_ms, False)]
        assert last_message_ms == kill  # held there: its heartbeat of that moment was its last word
        # Written once, though the will reached the alert worker twice (its shared and its plain subscription).
        assert offline_points(query, site) == dict.fromkeys(offline, 1)

        # Started again (a new boot): its birth re-states each machine, and "state now" is true again.
        restart = sc.clock.now_ms() + 10_000
        quiet = -(-(restart + 2 * MINUTE_S * 1000) // HEARTBEAT_MS) * HEARTBEAT_MS  # on a heartbeat edge
        processes.append(yarn_gateway(sc, settings, tmp_path, first_read_ms=restart, hold_at_ms=quiet))
        birth = tap.wait_for("the new birth", lambda m: isinstance(m, GatewayStatus) and m.online and m.ts >= restart)
        tap.wait_for("the heartbeat where its time stops", lambda m: isinstance(m, Heartbeat) and m.ts >= quiet)
        assert isinstance(birth, GatewayStatus)
        expected = now_of_each(tap.snapshot(), birth)
        wait_until(lambda: last_states(query, site) == expected, timeout_s=60, what="the birth's states in InfluxDB")
        states = {m: state for m, (_, state) in expected.items()}
        assert (states["SPIN-001"], states["CARD-002"]) == ("DOWN", "MAINTENANCE")
    finally:
        tap.close()
        stop_processes(reversed(processes), timeout_s=30)
