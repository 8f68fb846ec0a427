"""One network thread for every gateway link of a process (gateway/publisher.py).

A simulated county runs about twenty gateways in one process. With paho's ``loop_start`` each link had a thread of
its own, woken (and handed the interpreter's lock) for every PUBACK and for the wake-up byte of every publish; the
threads spent their time contending for the lock. ``LinkHub`` does for all of them, in one thread, what paho's
``loop_forever`` did for one: it selects over every client's socket and a wake-up socket of its own, reads what is
readable, writes what is queued, keeps each connection alive, and connects again after a loss with a backoff (the
settings' bounds, with jitter, so that a process's links do not knock on a restarted broker in step), including
to a broker that is down at the start.

Threads. A paho client without its own loop writes from ``publish`` in the caller's thread when it can, which
would race the hub's writes on the same socket. So a client is configured by its owner (callbacks, last will)
before it is attached, and from then on only the hub's thread calls it: the owner hands publications over through
the client's outbox (``HubClient.publish``: a deque and a wake-up), and its stop the same way. paho's callbacks run
in the hub's thread. Only paho's public API is used (``socket``, ``want_write``, ``loop_read``/``loop_write``/
``loop_misc``, ``connect_async``/``reconnect``, ``is_connected`` and the socket open and close callbacks, which
keep the selector in step with paho's socket whatever closes it).

A connection attempt blocks the thread for its TCP (and TLS) handshake, up to paho's connect timeout (5 s): links
connect one at a time, and a broker that does not answer at all holds up the others' traffic meanwhile (a broker
that is down refuses at once). The thread runs while a client is attached and ends with the last one's stop.
"""

from __future__ import annotations

import contextlib
import logging
import random
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from ftel.errors import MachineryError
from ftel.retry import RetryPolicy
from ftel.settings import MqttSettings

log = logging.getLogger(__name__)

# How often each connection's keepalive is looked at (PINGREQ due, the broker silent too long): paho's own loop
# looks at least this often.
MISC_EVERY_S = 1.0
# The wake-up socket is emptied this many bytes at a time (one byte per wake-up asked for while the thread worked).
WAKE_READ_BYTES = 4096
# At a stop, how long the publications handed over may take to be acknowledged before the DISCONNECT goes. paho
# closes its socket as soon as the DISCONNECT is written; closed with bytes still unread (PUBACKs on their way),
# a TCP socket is reset rather than closed, and without this wait the broker lost the last publications of a
# burst (tests/integration/test_link_hub.py). What is not acknowledged by then stays unconfirmed in the
# gateway's spool, to be sent at its next start.
STOP_PUBACK_WAIT_S = 2.0


def reconnect_policy(settings: MqttSettings) -> RetryPolicy:
    """How long a link waits before connecting again: from ``reconnect_min_s`` after a loss (or a failed
    attempt), doubling up to ``reconnect_max_s``, each wait stretched by the policy's jitter (a restarted broker is
    not met by every link at once, as the ingest workers' loop does); back to the start at every CONNACK."""
    return RetryPolicy(settings.reconnect_min_s, settings.reconnect_max_s)


class LinkError(MachineryError):
    """The links' network thread failed: no link of this process reaches the broker any more."""


class HubClient:
    """One paho client as a ``LinkHub`` drives it. Its owner calls ``publish`` and ``stop`` (from any thread);
    the rest is the hub thread's."""

    def __init__(self, hub: LinkHub, client: mqtt.Client, settings: MqttSettings, *, name: str) -> None:
        self.client = client
        self.name = name
        self.settings = settings
        self.reconnect = reconnect_policy(settings)
        self._hub = hub
        # Publications handed over and not yet given to paho: (topic, payload, retain), QoS 1.
        self.outbox: deque[tuple[str, bytes, bool]] = deque()
        self.stop_asked = False
        self.stopped = threading.Event()
        # The hub thread's own: the registered socket and what the selector watches it for, the failed attempts
        # since the last CONNACK, when to try connecting next (None: connected, connecting or stopping), the
        # publications given to paho and not yet acknowledged (oldest first), and at a stop, until when to wait
        # for their PUBACKs and whether the DISCONNECT is queued.
        self.sock: mqtt.SocketLike | None = None
        self.events = 0
        self.failures = 0
        self.connect_at: float | None = 0.0
        self.unacknowledged: deque[mqtt.MQTTMessageInfo] = deque()
        self.stop_by: float | None = None
        self.disconnecting = False

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        """Hand one QoS 1 publication to the hub thread (in order with this client's others and its stop)."""
        self._hub.raise_if_failed()
        self.outbox.append((topic, payload, retain))
        self._hub.wake()

    def stop(self) -> None:
        """Disconnect cleanly after everything handed over so far is acknowledged by the broker (for up to
        ``STOP_PUBACK_WAIT_S``); return once the DISCONNECT is written (or the connection is gone: a broker that
        stopped answering is given up on after the keepalive)."""
        self.stop_asked = True
        self._hub.wake()
        while not self.stopped.wait(MISC_EVERY_S):
            if self._hub.failure is not None:
                return


class LinkHub:
    """The network thread of a process's gateway links. ``draw``: the random source of the reconnect jitter."""

    def __init__(self, *, name: str = "mqtt-links", draw: Callable[[], float] = random.random) -> None:
        self._name = name
        self._draw = draw
        self._lock = threading.Lock()
        self._joining: deque[HubClient] = deque()
        self._thread: threading.Thread | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_pair: tuple[socket.socket, socket.socket] | None = None
        self._woken = False
        self._clients: list[HubClient] = []  # the hub thread's
        self.failure: BaseException | None = None

    # -- what owners call, from any thread -------------------------------------------------------------------

    def attach(self, client: mqtt.Client, settings: MqttSettings, *, name: str) -> HubClient:
        """Take over ``client`` (configured, not connected) and connect it to the settings' broker, now and after
        every loss, until its stop. ``name`` says whose connection it is in the log."""
        self.raise_if_failed()
        member = HubClient(self, client, settings, name=name)

        def opened(client: mqtt.Client, userdata: object, sock: mqtt.SocketLike) -> None:
            self._register(member, sock)

        def closed(client: mqtt.Client, userdata: object, sock: mqtt.SocketLike) -> None:
            self._unregister(member, sock)

        client.on_socket_open = opened
        client.on_socket_close = closed
        with self._lock:
            self._joining.append(member)
            if self._thread is None:
                self._selector = selectors.DefaultSelector()
                self._wake_pair = socket.socketpair()
                for end in self._wake_pair:
                    end.setblocking(False)
                self._selector.register(self._wake_pair[0], selectors.EVENT_READ, None)
                self._woken = False
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            else:
                self.wake()
        return member

    def wake(self) -> None:
        """End the thread's wait now. One byte per wait: the thread clears the flag before it looks at the
        outboxes, so a publication after that look writes the byte again."""
        if self._woken:
            return
        self._woken = True
        pair = self._wake_pair
        if pair is not None:
            with contextlib.suppress(OSError):  # full (the thread is awake anyway) or closed (it has ended)
                pair[1].send(b"\0")

    def raise_if_failed(self) -> None:
        if self.failure is not None:
            raise LinkError(
                f"the MQTT link thread {self._name} failed ({self.failure!r}); the gateways of this process keep "
                "their messages in their spools until it is restarted"
            ) from self.failure

    # -- the thread ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as error:
            self.failure = error
            log.exception("the MQTT link thread %s failed; its links are down", self._name)
            with self._lock:
                members = [*self._clients, *self._joining]
                self._end()
            for member in members:
                member.stopped.set()

    def _end(self) -> None:
        """Under the lock: the thread ends (the next attach starts another)."""
        self._thread = None
        selector, pair = self._selector, self._wake_pair
        self._selector = self._wake_pair = None
        if selector is not None:
            selector.close()
        for end in pair or ():
            end.close()

    def _loop(self) -> None:
        selector = self._selector
        assert selector is not None  # made with the thread
        next_misc = time.monotonic() + MISC_EVERY_S
        while True:
            self._woken = False
            with self._lock:
                joined = list(self._joining)
                self._joining.clear()
                if not joined and not self._clients:
                    self._end()
                    return
            for member in joined:
                member.client.connect_async(
                    member.settings.host, member.settings.port, keepalive=member.settings.keepalive_s, clean_start=True
                )
                self._clients.append(member)
            now = time.monotonic()
            for member in self._clients:
                self._hand_over(member, now)
                if member.connect_at is not None and member.connect_at <= now and not member.stop_asked:
                    self._connect(member)
            self._settle(now)
            if not self._clients:
                continue
            decrypted = [m for m in self._clients if _decrypted(m.sock)]
            timeout = 0.0 if decrypted else self._timeout(next_misc, now)
            for member in self._clients:
                self._watch(member)
            for key, mask in selector.select(timeout):
                member = key.data
                if member is None:
                    self._drain_wake()
                    continue
                if mask & selectors.EVENT_READ and member.client.socket() is not None:
                    member.client.loop_read()
                if mask & selectors.EVENT_WRITE and member.client.socket() is not None:
                    member.client.loop_write()
            for member in decrypted:
                if member.client.socket() is not None:
                    member.client.loop_read()
            now = time.monotonic()
            misc = now >= next_misc
            if misc:
                next_misc = now + MISC_EVERY_S
            for member in self._clients:
                client = member.client
                if client.socket() is None:
                    continue
                if misc:
                    client.loop_misc()
                # What a callback queued (the subscription at CONNACK) is not written by paho itself.
                if client.want_write() and client.socket() is not None:
                    client.loop_write()
                if member.failures and client.is_connected():
                    member.failures = 0
            self._settle(now)

    def _hand_over(self, member: HubClient, now: float) -> None:
        """Give paho what the owner handed over; at its stop, once that is acknowledged, the DISCONNECT. Without
        a connection the outbox is dropped: the owner sends again everything unconfirmed at the next connect."""
        client, unacknowledged = member.client, member.unacknowledged
        while member.outbox:
            topic, payload, retain = member.outbox.popleft()
            if client.socket() is not None:
                info = client.publish(topic, payload, qos=1, retain=retain)
                if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    unacknowledged.append(info)
        while unacknowledged and unacknowledged[0].is_published():
            unacknowledged.popleft()
        if not member.stop_asked or member.disconnecting:
            return
        member.connect_at = None
        if member.stop_by is None:
            member.stop_by = now + STOP_PUBACK_WAIT_S
        if client.socket() is None:
            member.disconnecting = True
        elif not unacknowledged or now >= member.stop_by:
            member.disconnecting = True
            client.disconnect()

    def _connect(self, member: HubClient) -> None:
        member.connect_at = None
        try:
            member.client.reconnect()
        except OSError as error:
            if member.failures == 0:
                log.warning(
                    "gateway %s cannot reach the MQTT broker at %s:%s (%s); spooling, and trying again",
                    member.name,
                    member.settings.host,
                    member.settings.port,
                    error,
                )
            else:
                log.debug("gateway %s: connecting failed again (%s)", member.name, error)
            self._retry_later(member, time.monotonic())

    def _retry_later(self, member: HubClient, now: float) -> None:
        member.connect_at = now + member.reconnect.backoff(member.failures, self._draw)
        member.failures += 1

    def _settle(self, now: float) -> None:
        """A client whose socket is gone: done if it was stopping, else due to connect again after its backoff."""
        for member in list(self._clients):
            if member.client.socket() is not None:
                continue
            if member.stop_asked:
                self._clients.remove(member)
                member.stopped.set()
            elif member.connect_at is None:
                self._retry_later(member, now)

    def _timeout(self, next_misc: float, now: float) -> float:
        due = [next_misc, *(m.connect_at for m in self._clients if m.connect_at is not None)]
        due += [m.stop_by for m in self._clients if m.stop_by is not None and not m.disconnecting]
        return max(0.0, min(due) - now)

    def _watch(self, member: HubClient) -> None:
        """Watch the socket for writing too while paho has bytes it could not write yet."""
        if member.sock is None or self._selector is None:
            return
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if member.client.want_write() else 0)
        if wanted != member.events:
            self._selector.modify(member.sock, wanted, member)
            member.events = wanted

    def _register(self, member: HubClient, sock: mqtt.SocketLike) -> None:
        assert self._selector is not None  # paho opens a socket only in reconnect, called by the thread
        self._selector.register(sock, selectors.EVENT_READ, member)
        member.sock, member.events = sock, selectors.EVENT_READ

    def _unregister(self, member: HubClient, sock: mqtt.SocketLike) -> None:
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
        member.sock, member.events = None, 0

    def _drain_wake(self) -> None:
        pair = self._wake_pair
        if pair is not None:
            with contextlib.suppress(BlockingIOError):
                while pair[0].recv(WAKE_READ_BYTES):
                    pass


def _decrypted(sock: mqtt.SocketLike | None) -> bool:
    """Over TLS, bytes already decrypted inside the SSL object, where select does not see them (paho's own loop
    asks the same)."""
    pending = getattr(sock, "pending", None)  # ssl.SSLSocket's
    return pending is not None and bool(pending())
