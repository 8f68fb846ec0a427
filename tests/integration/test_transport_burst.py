"""A worker's flow control on the real broker: one ``poll`` of the MQTT transport hands over at most READ_BURST
messages (and what paho's last read took past it), even while the worker's own publications wait for their PUBACK
behind a backlog, the case in which paho reads one packet per waiting publication at each call (and the worker's
``max_unacked`` did not hold while it drained a backlog: docs/scale.md, "Backlog drain")."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from ftel.contract.topics import MachineKind, data_filter, health_topic, machine_topic, shared
from ftel.mqtt import paho_client
from ftel.mqtt_transport import READ_BURST, PahoTransport
from ftel.security.identities import Role
from ftel.settings import MqttSettings
from ftel.stack import free_port
from tests.support import MqttProbe, Services, unique, wait_until

pytestmark = pytest.mark.integration
BACKLOG = 6_000
WAITING_PUBLICATIONS = 40


def queue_backlog(services: Services, database: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish ``messages`` (topic, payload) as the admin, at QoS 1, each one accepted by the broker."""
    mqtt = services.admin(database).mqtt
    publisher = paho_client(mqtt, client_id="")
    publisher.connect(mqtt.host, mqtt.port)
    publisher.loop_start()
    try:
        infos = [publisher.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        publisher.loop_stop()
        publisher.disconnect()


def make_session(transport: PahoTransport, topic_filter: str) -> None:
    """The transport's persistent session, subscribed to ``topic_filter``, left for a backlog to be queued."""
    transport.connect()
    transport.subscribe(topic_filter)

    def granted() -> bool:
        transport.poll(0.1, read=True)
        return transport.subscribed()

    wait_until(granted, timeout_s=15, what="the subscription granted", every_s=0)
    transport.disconnect()


def test_one_poll_hands_over_at_most_a_burst_while_publications_await_their_puback(
    services: Services, database: str
) -> None:
    site, group = unique("burst"), unique("g")
    worker = services.grant(unique("ingest"), Role.INGEST)
    settings = services.settings(database, identity=worker)
    received: list[int] = []
    transport = PahoTransport(
        settings.mqtt,
        client_id=worker,
        session_expiry_s=600,
        receive_maximum=65_535,
        on_message=lambda topic, payload, mid, qos: received.append(mid),
    )
    try:
        # The session exists, then the backlog is queued for it while the worker is away.
        make_session(transport, shared(group, data_filter(site)))
        backlog = [machine_topic(site, "ws", "knitting", f"K{n:05d}", MachineKind.WINDOW) for n in range(BACKLOG)]
        queue_backlog(services, database, [(topic, b"{}") for topic in backlog])

        transport.connect()  # the broker starts sending the backlog at once
        for n in range(WAITING_PUBLICATIONS):
            transport.publish(health_topic("ingest", worker), f"{n}".encode())
        per_poll: list[int] = []

        def one_poll() -> bool:
            before = len(received)
            transport.poll(0.2, read=True)
            per_poll.append(len(received) - before)
            return len(received) >= BACKLOG

        wait_until(one_poll, timeout_s=120, what="the whole backlog", every_s=0)
    finally:
        transport.disconnect()
        transport.close()
    # One read call takes at most one packet per publication waiting for its PUBACK: at most that past the burst.
    assert max(per_poll) <= READ_BURST + WAITING_PUBLICATIONS, per_poll


def test_a_burst_of_publications_leaves_at_once_though_no_puback_is_read(services: Services, database: str) -> None:
    """The alert worker's alerts of a fault burst must not wait 20 at a time for PUBACKs that the broker queues
    behind the backlog the worker reads: the transport takes as many in flight as the broker allows."""
    worker = services.grant(unique("ingest"), Role.INGEST)
    settings = services.settings(database, identity=worker)
    topic = health_topic("ingest", worker)
    probe = MqttProbe(services.admin(database).mqtt).connect()
    transport = PahoTransport(settings.mqtt, client_id=worker, session_expiry_s=0, receive_maximum=65_535)
    try:
        probe.subscribe(topic)
        transport.connect()
        published = [transport.publish(topic, f"{n}".encode()) for n in range(WAITING_PUBLICATIONS * 5)]

        def all_arrived() -> bool:
            transport.poll(0.05, read=False)  # writes what is queued; reads nothing, so no PUBACK is seen
            return len(probe.received(topic)) >= len(published)

        wait_until(all_arrived, timeout_s=30, what="every publication at the subscriber", every_s=0)
        assert not any(p.is_published() for p in published[-20:])  # their PUBACKs were never read
    finally:
        transport.disconnect()
        transport.close()
        probe.close()
    assert probe.received(topic) == [f"{n}".encode() for n in range(len(published))]


def test_a_broker_that_takes_fewer_in_flight_is_met_within_its_receive_maximum(tmp_path: Path) -> None:
    """Mosquitto as shipped takes 20 publications in flight (its Receive Maximum): the transport, which sets its
    bound before it can know the broker's, connects again within it and is not cut off for exceeding it."""
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 20\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(config)], stderr=subprocess.DEVNULL)
    settings = MqttSettings(port=port)
    probe, transport = (
        MqttProbe(settings),
        PahoTransport(settings, client_id="w", session_expiry_s=0, receive_maximum=10),
    )
    try:
        wait_until(lambda: _listening(port), timeout_s=10, what="the broker up")
        probe.connect()
        probe.subscribe("t")
        transport.connect()
        published = [transport.publish("t", f"{n}".encode()) for n in range(WAITING_PUBLICATIONS * 5)]
        # Without reading a PUBACK, what leaves is what the broker takes in flight, and no more.

        def written(count: int) -> bool:
            transport.poll(0.05, read=False)
            return len(probe.received("t")) >= count

        wait_until(lambda: written(20), timeout_s=30, what="20 publications at the subscriber", every_s=0)
        for _ in range(10):
            transport.poll(0.05, read=False)
        assert len(probe.received("t")) == 20

        def all_acknowledged() -> bool:
            transport.poll(0.05, read=True)
            return all(p.is_published() for p in published)

        wait_until(all_acknowledged, timeout_s=30, what="every publication acknowledged", every_s=0)
    finally:
        transport.disconnect()
        transport.close()
        probe.close()
        broker.terminate()
        broker.wait(10)
    assert probe.received("t") == [f"{n}".encode() for n in range(len(published))]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
