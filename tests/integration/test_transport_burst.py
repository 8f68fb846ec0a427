"""A worker's flow control on the real broker: one ``poll`` of the MQTT transport hands over at most READ_BURST
messages (and what paho's last read took past it), even while the worker's own publications wait for their PUBACK
behind a backlog, the case in which paho reads one packet per waiting publication at each call (and the worker's
``max_unacked`` did not hold while it drained a backlog: docs/scale.md, "Backlog drain")."""

from __future__ import annotations

import pytest

from ftel.contract.topics import MachineKind, data_filter, health_topic, machine_topic, shared
from ftel.mqtt import paho_client
from ftel.mqtt_transport import READ_BURST, PahoTransport
from ftel.security.identities import Role
from tests.support import Services, unique, wait_until

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
