"""The gateway's MQTT link: the port the runner talks to (``GatewayLink``) and its paho implementation.

``PahoGatewayLink`` (paho-mqtt 2.x, MQTT 5, QoS 1) registers the last will, subscribes to the gateway's
confirmations at every connect, and hands back to the runner (thread-safe) what happened: (re)connections,
confirmations, PUBACKs. Its network work (connecting, reconnecting, reading, writing, keepalives) is done by a
``LinkHub`` (gateway/link_hub.py): one thread for all the links of a process, or one of its own. It holds nothing
of its own: the spool does. The composition root builds it (``paho_link``) and hands it to the runner, so the
runner's delivery (resends, holes, drain) is unit-tested with a fake link, and the integration tests prove the
same on Mosquitto.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ftel.contract import Confirmation, ContractError, decode_confirmation
from ftel.mqtt import paho_client
from ftel.security.credentials import with_identity
from ftel.settings import MqttSettings, Settings
from gateway.link_hub import HubClient, LinkHub

log = logging.getLogger(__name__)

# paho's own queue only ever holds what the runner let in flight (it paces by PUBACKs), so paho need not bound it:
# 0 is no bound. With a bound, paho walks every message in flight at each PUBACK, looking for one queued behind
# the bound to send (an eighth of a simulated gateway process's network thread, at 65,535).
PAHO_MAX_INFLIGHT = 0


class GatewayLink(Protocol):
    """What the runner needs of its link to the broker. Every ``take_*`` answers what happened since the last
    call and may be called from the runner's thread while the link works in its own."""

    def start(self, *, will: tuple[str, bytes], confirm_topic: str) -> None:
        """Connect (and keep reconnecting) with this last will (retained, QoS 1), subscribed at every connect to
        ``confirm_topic``; returns at once."""
        ...

    def is_connected(self) -> bool: ...

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        """Hand one message over (QoS 1); False when it cannot take it now (not connected)."""
        ...

    def take_connects(self) -> int:
        """How many times the link (re)connected."""
        ...

    def take_pubacks(self) -> int:
        """How many publications the broker answered (refused ones too: they only free room in flight)."""
        ...

    def take_confirmations(self) -> list[Confirmation]:
        """Ingest's confirmations that arrived, already decoded."""
        ...

    def stop(self) -> None: ...


class PahoGatewayLink:
    def __init__(self, settings: MqttSettings, *, client_id: str, hub: LinkHub | None = None) -> None:
        """``hub``: the network thread shared with the process's other links; None: one of its own."""
        self._settings = settings
        self._client_id = client_id
        self._hub = hub or LinkHub(name=f"mqtt-{client_id}")
        self._attached: HubClient | None = None
        self._confirm_topic = ""
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._connects = 0
        self._pubacks = 0
        self._confirmations: queue.SimpleQueue[Confirmation] = queue.SimpleQueue()
        self._client = paho_client(settings, client_id=client_id)
        self._client.max_inflight_messages_set(PAHO_MAX_INFLIGHT)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    def start(self, *, will: tuple[str, bytes], confirm_topic: str) -> None:
        self._confirm_topic = confirm_topic
        will_topic, will_payload = will
        self._client.will_set(will_topic, will_payload, qos=1, retain=True)
        # From here on only the hub's thread calls the client: the first connection and every reconnect happen
        # there, so a broker that is down at start is no different from one that goes away later.
        self._attached = self._hub.attach(self._client, self._settings, name=self._client_id)

    def is_connected(self) -> bool:
        return self._connected.is_set()

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        if self._attached is None or not self._connected.is_set():
            return False
        self._attached.publish(topic, payload, retain=retain)
        return True

    def take_connects(self) -> int:
        with self._lock:
            count, self._connects = self._connects, 0
        return count

    def take_pubacks(self) -> int:
        with self._lock:
            count, self._pubacks = self._pubacks, 0
        return count

    def take_confirmations(self) -> list[Confirmation]:
        out: list[Confirmation] = []
        while True:
            try:
                out.append(self._confirmations.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        """Disconnect cleanly once everything published so far is written (a clean disconnect sends no will)."""
        if self._attached is not None:
            self._attached.stop()
        self._connected.clear()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning(
                "the broker refused the gateway (%s): check its credentials (ftel auth show %s)",
                reason_code,
                self._client_id,
            )
            return
        client.subscribe(self._confirm_topic, qos=1)
        with self._lock:
            self._connects += 1
        self._connected.set()
        log.info("connected to MQTT broker %s:%s", self._settings.host, self._settings.port)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        if reason_code.value != 0:
            log.warning("lost the MQTT broker (%s); spooling and reconnecting", reason_code)

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, reason_code: ReasonCode, properties: Properties
    ) -> None:
        if reason_code.is_failure:
            # Refused by the broker's ACL: it stays in the spool (unconfirmed) and is sent again later.
            log.error("the broker refused a message of this gateway: %s", reason_code)
        with self._lock:
            self._pubacks += 1

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            self._confirmations.put(decode_confirmation(message.topic, bytes(message.payload)))
        except ContractError as error:
            log.warning("ignored a confirmation on %s: %s", message.topic, error)


def paho_link(settings: Settings, gateway_id: str, *, hub: LinkHub | None = None) -> PahoGatewayLink:
    """The link of gateway ``gateway_id`` to the settings' broker, with its own identity's credentials; on
    ``hub``, the network thread of the process's links (None: a thread of its own)."""
    return PahoGatewayLink(with_identity(settings, gateway_id).mqtt, client_id=gateway_id, hub=hub)
