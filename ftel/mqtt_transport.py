"""A consuming worker's MQTT connection (paho-mqtt 2.x, MQTT 5), with a network loop the worker drives itself.

Used by the ingest and the alert worker. Driving the loop is what lets a worker stop reading the socket while
too much is unacknowledged (flow control that does not trust the broker's Receive Maximum: Mosquitto stops
honouring it), and acknowledge each message only after what it caused is stored (paho's manual
acknowledgement, a supported switch of the library). A publication is tracked until the broker's PUBACK, so a
worker can tell what the broker really has. ``MqttTransport`` is the port the workers talk to; fakes unit-test
their logic, and the integration tests prove the same on the real broker.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Literal, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ftel.errors import MachineryError
from ftel.mqtt import paho_client
from ftel.settings import MqttSettings

OnMessage = Callable[[str, bytes, int, int], None]  # topic, payload, mid, qos
# A publication at QoS 1 takes one of paho's in-flight slots until the broker's PUBACK, and one past them waits in
# paho, unsent, for a slot; a worker's acknowledgements do not wait. While a worker drains a backlog, Mosquitto
# queues its PUBACKs behind the whole backlog it is sending the worker (docs/scale.md, "Confirmations during a
# drain"), so a QoS 1 publication past the slots leaves only once the backlog is read, after the acknowledgements
# made later. A QoS 0 publication needs no slot and no PUBACK: it is written at once, in the order of the calls,
# before the acknowledgements that follow it.
Qos = Literal[0, 1]
# paho's slots are 20 unless told, whatever the broker takes; a worker takes as many as the broker's Receive Maximum
# allows (MQTT 5: 65,535 when it names none), up to this. At 60,000 machines the alert worker's 240 alerts of a
# fault burst left 20 at a time, each 20 a backlog's drain after the last: the last ones 50 s late.
PUBLISH_IN_FLIGHT_MAX = 1_000
CONNECT_TIMEOUT_S = 15.0
# Messages read per readable socket before the worker looks at its batch and limits again. Counted in messages,
# not in paho's ``loop_read`` calls: one call reads as many packets as the client has publications of its own
# awaiting their PUBACK, and in a backlog those wait behind the backlog (the broker queues its PUBACKs after it),
# so they pile up (the ingest worker's confirmations did, one batch's at a time, until they went at QoS 0);
# counted in calls, a poll read 500 times that many messages and the worker's ``max_unacked`` did not hold
# (batches grew without bound as the backlog drained).
READ_BURST = 500
# At disconnect, how long what was published may take to be acknowledged by the broker.
DISCONNECT_WAIT_S = 2.0


class TransportError(MachineryError):
    """The broker went away or refused us; the text says which and what to do."""


class Publication(Protocol):
    def is_published(self) -> bool:
        """Whether the broker acknowledged it (PUBACK). Never, once its connection is gone."""
        ...


class MqttTransport(Protocol):
    def connect(self) -> bool:
        """Connect; return whether the broker still had our session."""
        ...

    on_message: OnMessage | None

    def subscribe(self, topic_filter: str) -> None:
        """Ask for the subscription and return at once: a resumed session's backlog may arrive before the
        broker's answer, and is read (within the worker's limit) while it comes. Several may be asked for."""
        ...

    def unsubscribe(self, topic_filter: str) -> None: ...

    def subscribed(self) -> bool:
        """Whether the broker has granted every subscription asked for on this connection; raises
        TransportError when it refused one."""
        ...

    def poll(self, timeout_s: float, *, read: bool) -> None:
        """Move bytes: write what is queued, read (and hand over) messages when ``read``, a bounded burst of
        them, so the caller's limits hold. Raises TransportError when the connection is lost."""
        ...

    def ack(self, mid: int) -> None: ...

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: Qos = 1) -> Publication:
        """QoS 1 by default: the answer says when the broker has it. QoS 0 goes onto the wire at once, in order
        with the acknowledgements (see ``Qos``), and its answer says only that it was written."""
        ...

    def disconnect(self) -> None: ...

    def wake(self) -> None:
        """From any thread: end the current poll early."""
        ...

    def close(self) -> None: ...


class _Unsent:
    """A publication made while the connection was down: the broker never gets it."""

    def is_published(self) -> bool:
        return False


_NEVER = _Unsent()


class PahoTransport:
    def __init__(
        self,
        settings: MqttSettings,
        *,
        client_id: str,
        session_expiry_s: int,
        receive_maximum: int,
        on_message: OnMessage | None = None,
    ) -> None:
        self._settings = settings
        self._client_id = client_id
        self.on_message = on_message
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        # What ``wake`` writes to end a poll early (made at the first connect: a transport never connected holds
        # no socket).
        self._wake_pair: tuple[socket.socket, socket.socket] | None = None
        self._client: mqtt.Client | None = None
        self._connack: tuple[bool, ReasonCode] | None = None
        # Subscriptions asked for on this connection and not yet answered (mid -> filter), and those refused.
        self._asked: dict[int, str] = {}
        self._refused: list[tuple[str, ReasonCode]] = []
        self._received = 0
        # Published on this connection, not yet acknowledged by the broker (oldest first).
        self._unacknowledged: deque[mqtt.MQTTMessageInfo] = deque()
        self._closing = False
        # Publications in flight at most: ours, until a CONNACK names a lower Receive Maximum.
        self._in_flight_max = PUBLISH_IN_FLIGHT_MAX
        self._broker_receive_maximum = PUBLISH_IN_FLIGHT_MAX

    def _new_client(self) -> mqtt.Client:
        client = paho_client(self._settings, client_id=self._client_id)
        client.manual_ack_set(True)
        client.max_inflight_messages_set(self._in_flight_max)  # paho takes it only before the connection
        client.on_connect = self._handle_connect
        client.on_subscribe = self._handle_subscribe
        client.on_unsubscribe = self._handle_unsubscribe
        client.on_message = self._handle_message
        return client

    def connect(self) -> bool:
        session_present = self._connect_once()
        if self._broker_receive_maximum < self._in_flight_max:
            # This broker takes fewer publications in flight than were set before it said so (paho takes the
            # bound only before a connection): connect again within it, once; the session stays.
            self._in_flight_max = self._broker_receive_maximum
            self._drop()
            self._connect_once()
        return session_present

    def _connect_once(self) -> bool:
        if self._wake_pair is None:
            self._wake_pair = socket.socketpair()
            for end in self._wake_pair:
                end.setblocking(False)
        self._client = self._new_client()
        self._unacknowledged.clear()
        self._asked.clear()
        self._refused.clear()
        self._closing = False
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        # Without a session expiry an MQTT 5 session ends with the connection; with one, a restarted worker
        # finds what arrived while it was away (and a worker gone for good lets go of its share when it ends).
        properties.SessionExpiryInterval = self._session_expiry_s
        properties.ReceiveMaximum = min(65_535, self._receive_maximum)
        self._connack = None
        try:
            self._client.connect(
                self._settings.host,
                self._settings.port,
                keepalive=self._settings.keepalive_s,
                clean_start=False,
                properties=properties,
            )
        except OSError as error:
            raise TransportError(f"cannot reach the MQTT broker at {self._where}: {error}") from error
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while self._connack is None:
            if time.monotonic() > deadline:
                raise TransportError(f"the MQTT broker at {self._where} did not answer within {CONNECT_TIMEOUT_S} s")
            self.poll(0.1, read=True)
        session_present, reason = self._connack
        if reason.is_failure:
            self._drop()
            raise TransportError(
                f"the MQTT broker at {self._where} refused worker {self._client_id}: {reason} "
                f"(check its credentials: ftel auth show {self._client_id})"
            )
        return session_present

    @property
    def _where(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    def subscribe(self, topic_filter: str) -> None:
        rc, mid = self._require().subscribe(topic_filter, qos=1)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise TransportError(f"cannot subscribe to {topic_filter}: {mqtt.error_string(rc)}")
        self._asked[mid] = topic_filter

    def unsubscribe(self, topic_filter: str) -> None:
        rc, _ = self._require().unsubscribe(topic_filter)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise TransportError(f"cannot unsubscribe from {topic_filter}: {mqtt.error_string(rc)}")

    def subscribed(self) -> bool:
        if self._refused:
            topic_filter, reason = self._refused[0]
            raise TransportError(
                f"the broker refused the subscription to {topic_filter} ({reason}): check this worker's rights "
                f"(docs/security.md)"
            )
        return not self._asked

    def poll(self, timeout_s: float, *, read: bool) -> None:
        client = self._require()
        sock = client.socket()
        if sock is None:
            raise TransportError(f"lost the MQTT broker at {self._where}")
        assert self._wake_pair is not None  # made by connect, before any client
        wake_r = self._wake_pair[0]
        readers: list[object] = [wake_r, sock] if read else [wake_r]
        writers = [sock] if client.want_write() else []
        # Over TLS, what the last poll left unread may be decrypted already, inside the SSL object, where select
        # does not see it (paho's own loop asks the same): then look without waiting, and read it.
        decrypted = getattr(sock, "pending", None)  # ssl.SSLSocket's
        pending = read and decrypted is not None and decrypted() > 0
        readable, writable, _ = select.select(readers, writers, [], 0 if pending else timeout_s)  # type: ignore[type-var]
        if pending and sock not in readable:
            readable.append(sock)
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                wake_r.recv(4096)
        if sock in writable:
            self._check(client.loop_write())
        if sock in readable:
            # At most READ_BURST messages, plus what the last call took past it (one per publication awaiting its
            # PUBACK: see READ_BURST).
            first = self._received
            while self._received - first < READ_BURST:
                before = self._received
                self._check(client.loop_read())
                if self._received == before:
                    break
        self._check(client.loop_misc())

    def ack(self, mid: int) -> None:
        self._require().ack(mid, 1)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: Qos = 1) -> Publication:
        info = self._require().publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise TransportError(f"cannot publish on {topic}: {mqtt.error_string(info.rc)}")
        self._forget_acknowledged()
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return _NEVER  # (paho's answer would raise when asked)
        if qos:
            self._unacknowledged.append(info)
        return info

    def _forget_acknowledged(self) -> None:
        while self._unacknowledged and self._unacknowledged[0].is_published():
            self._unacknowledged.popleft()

    def disconnect(self) -> None:
        if self._client is None:
            return
        client = self._client
        # paho holds back QoS 1 publications past its in-flight window until PUBACKs come: without this wait the
        # last dead letters of a clean stop (and the alert worker's publications) would go down with the
        # connection (QoS 0 ones, such as the ingest worker's confirmations and health, are queued in order and go
        # out ahead of the DISCONNECT below). Messages that arrive meanwhile are left unacknowledged for the broker
        # to hand out again.
        self._closing = True
        deadline = time.monotonic() + DISCONNECT_WAIT_S
        with contextlib.suppress(TransportError):
            while self._unacknowledged and time.monotonic() < deadline:
                self.poll(0.05, read=True)
                self._forget_acknowledged()
        if self._client is None:  # lost while waiting
            return
        client.disconnect()
        # Let the DISCONNECT (and any queued acknowledgement) go out before the socket closes.
        deadline = time.monotonic() + 2.0
        while client.want_write() and client.socket() is not None and time.monotonic() < deadline:
            client.loop_write()
        self._drop()

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            if self._wake_pair is not None:
                self._wake_pair[1].send(b"x")

    def close(self) -> None:
        self._drop()
        pair, self._wake_pair = self._wake_pair, None
        for end in pair or ():
            end.close()

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.socket() is not None:
            client.socket().close()  # type: ignore[union-attr]

    def _require(self) -> mqtt.Client:
        if self._client is None:
            raise TransportError("not connected to the MQTT broker")
        return self._client

    def _check(self, rc: MQTTErrorCode) -> None:
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._drop()
            raise TransportError(f"lost the MQTT broker at {self._where}: {mqtt.error_string(rc)}")

    def _handle_connect(
        self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason: ReasonCode, props: object
    ) -> None:
        self._connack = (flags.session_present, reason)
        self._broker_receive_maximum = getattr(props, "ReceiveMaximum", 65_535)

    def _handle_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, reasons: list[ReasonCode], props: object
    ) -> None:
        topic_filter = self._asked.pop(mid, "?")
        self._refused.extend((topic_filter, code) for code in reasons if code.is_failure)

    def _handle_unsubscribe(
        self, client: mqtt.Client, userdata: object, mid: int, reasons: list[ReasonCode], props: object
    ) -> None:
        pass  # nothing waits for it: messages still on their way for that filter are the worker's to judge

    def _handle_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if self._closing:
            return
        self._received += 1
        if self.on_message is None:
            raise TransportError("a message arrived and nothing takes it (the worker set no on_message)")
        self.on_message(message.topic, bytes(message.payload), message.mid, message.qos)
