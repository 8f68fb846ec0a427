"""MQTT side of the gateway (paho-mqtt 2.x): QoS 1, birth on every connect, last will, automatic reconnect.

While the broker is away paho keeps every QoS 1 message in its outgoing queue, in order, and sends them when
the connection is back; that queue is the gateway's spool, bounded by ``spool_max_messages``. A message that
does not fit is dropped and counted (spool_dropped in every heartbeat).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ftel.contract.codec import encode
from ftel.contract.models import Message
from ftel.settings import MqttSettings

log = logging.getLogger(__name__)

# Sending many QoS 1 messages without waiting for each PUBACK is what makes draining a spool fast.
MAX_INFLIGHT = 1000
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 10


@dataclass(slots=True)
class SpoolCounters:
    published: int = 0
    acknowledged: int = 0
    dropped: int = 0

    @property
    def depth(self) -> int:
        return self.published - self.acknowledged


class GatewayPublisher:
    def __init__(
        self,
        settings: MqttSettings,
        *,
        client_id: str,
        will: tuple[str, Message],
        birth: Callable[[], tuple[str, Message]],
        spool_max_messages: int,
    ) -> None:
        self.counters = SpoolCounters()
        self._lock = threading.Lock()
        self._birth = birth
        self.connected = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self._client.max_inflight_messages_set(MAX_INFLIGHT)
        self._client.max_queued_messages_set(spool_max_messages)
        self._client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        if settings.username:
            password = settings.password.get_secret_value() if settings.password else None
            self._client.username_pw_set(settings.username, password)
        will_topic, will_message = will
        self._client.will_set(will_topic, encode(will_message), qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._settings = settings

    def start(self) -> None:
        # connect_async + loop_start: the first connection and every reconnect happen in paho's thread, so a
        # broker that is down at start is no different from one that goes away later.
        self._client.connect_async(
            self._settings.host, self._settings.port, keepalive=self._settings.keepalive_s, clean_start=True
        )
        self._client.loop_start()

    def publish(self, topic: str, message: Message, *, retain: bool = False) -> None:
        info = self._client.publish(topic, encode(message), qos=1, retain=retain)
        with self._lock:
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                self.counters.dropped += 1
            else:
                self.counters.published += 1

    def drain(self, stall_timeout_s: float) -> bool:
        """Wait until the broker has acknowledged every published message. Gives up only when no
        acknowledgement has come for ``stall_timeout_s``: a busy broker may take long, but it progresses."""
        pause = threading.Event()
        last_acked, stalled_since = self.counters.acknowledged, time.monotonic()
        while self.counters.depth > 0:
            pause.wait(0.05)
            acked = self.counters.acknowledged
            if acked != last_acked:
                last_acked, stalled_since = acked, time.monotonic()
            elif time.monotonic() - stalled_since > stall_timeout_s:
                return False
        return True

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the gateway: %s", reason_code)
            return
        topic, birth = self._birth()
        # The birth goes out ahead of whatever the spool still holds (paho sends queued messages first; the
        # order of birth vs. old data does not matter, every message is self-contained).
        client.publish(topic, encode(birth), qos=1, retain=True)
        with self._lock:
            self.counters.published += 1
        self.connected.set()
        log.info("connected to MQTT broker %s:%s", self._settings.host, self._settings.port)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connected.clear()
        if reason_code.value != 0:
            log.warning("lost the MQTT broker (%s); spooling and reconnecting", reason_code)

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, reason_code: ReasonCode, properties: Properties
    ) -> None:
        with self._lock:
            self.counters.acknowledged += 1
