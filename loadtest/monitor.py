"""The load test's window on the wire: one MQTT subscriber (read-only identity) that keeps the gateways' latest
heartbeats, the ingest workers' latest health and the first firing of every alert with when it arrived. It
takes only those topics, never the data stream, so watching costs little at any size."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from alerts.lifecycle import AlertRecord
from ftel.contract.topics import GatewayKind, alerts_filter, gateway_kind_filter, health_topic, is_alert_topic
from ftel.mqtt import paho_client
from ftel.settings import MqttSettings
from loadtest.errors import LoadTestError
from loadtest.health import GatewayBeat, WorkerHealth, is_firing, parse_alert, parse_health, parse_heartbeat

CONNECT_TIMEOUT_S = 30.0


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class AlertSeen:
    record: AlertRecord
    received_ms: int  # wall clock


@dataclass(frozen=True, slots=True)
class WireView:
    beats: dict[str, GatewayBeat]
    health: dict[str, WorkerHealth]
    alerts: dict[str, AlertSeen]


class Monitor:
    def __init__(self, mqtt: MqttSettings, *, site: str) -> None:
        self._site = site
        self._lock = threading.Lock()
        self._beats: dict[str, GatewayBeat] = {}
        self._health: dict[str, WorkerHealth] = {}
        self._alerts: dict[str, AlertSeen] = {}
        self._connected = threading.Event()
        self._refused: str | None = None
        self._settings = mqtt
        self._client = paho_client(mqtt, client_id=mqtt.username or "")
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._topics = (
            gateway_kind_filter(site, GatewayKind.HEARTBEAT),
            health_topic("ingest", "+"),
            alerts_filter(),
        )

    def start(self) -> None:
        try:
            self._client.connect(self._settings.host, self._settings.port)
        except OSError as error:
            raise LoadTestError(
                f"cannot reach the MQTT broker at {self._settings.host}:{self._settings.port}: {error}"
            ) from error
        self._client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT_S) or self._refused:
            self.stop()
            raise LoadTestError(
                f"the broker at {self._settings.host}:{self._settings.port} refused the monitor "
                f"({self._refused or 'no answer'}); it connects as {self._settings.username or 'anonymous'}: "
                "check that identity in the credentials file (`ftel auth show supervisor`)"
            )

    def _on_connect(
        self, client: paho.Client, userdata: object, flags: object, reason: ReasonCode, props: object
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        else:
            for topic in self._topics:
                client.subscribe(topic, qos=1)
        self._connected.set()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        topic, payload = message.topic, bytes(message.payload)
        if is_alert_topic(topic):
            # A retained alert handed over at subscription is from before this run.
            record = None if message.retain else parse_alert(payload)
            if record is not None and record.site == self._site and is_firing(record):
                with self._lock:
                    self._alerts.setdefault(record.alert_id, AlertSeen(record, wall_ms()))
        elif topic.startswith(health_topic("ingest", "")):
            health = parse_health(payload)
            if health is not None:
                with self._lock:
                    self._health[health.worker] = health
        else:
            beat = parse_heartbeat(topic, payload)
            if beat is not None:
                with self._lock:
                    self._beats[beat.gateway_id] = beat

    def view(self) -> WireView:
        with self._lock:
            return WireView(dict(self._beats), dict(self._health), dict(self._alerts))

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
