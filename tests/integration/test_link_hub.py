"""Gateway links sharing one network thread (gateway/link_hub.py) on the real Mosquitto: each link's messages are
answered with PUBACKs and routed, each gets its own confirmations, a broker restart by the project's own stack code
reconnects them all (and connects one started while the broker was down), the confirmations' subscription is made
again at the new connection, and a stop writes everything handed over before its DISCONNECT."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from ftel.contract import Confirmation, encode
from ftel.contract.topics import GatewayKind, confirm_topic, gateway_topic
from ftel.security.identities import Role
from gateway.link_hub import LinkHub
from gateway.publisher import PahoGatewayLink, paho_link
from tests.support import MqttProbe, Services, unique, wait_until

pytestmark = pytest.mark.integration

WORKSHOPS = ("ws0", "ws1", "ws2")
LATE = "ws3"  # started while the broker is down
BURST = 5
AT_STOP = 200


class Rig:
    """Gateways of one site, their links on one hub, and an admin that watches their topics."""

    def __init__(self, services: Services, database: str) -> None:
        self.services = services
        self.database = database
        self.site = unique("hub")
        self.hub_name = unique("links")
        self.hub = LinkHub(name=self.hub_name)
        self.gateway_ids = {
            ws: services.grant(unique("gw"), Role.GATEWAY, site=self.site, workshop=ws) for ws in (*WORKSHOPS, LATE)
        }
        self.admin = services.grant(unique("watch"), Role.ADMIN)
        self.links: dict[str, PahoGatewayLink] = {}
        self.watchers: list[MqttProbe] = []

    def start(self, workshop: str) -> PahoGatewayLink:
        gateway_id = self.gateway_ids[workshop]
        link = self.links[workshop] = paho_link(self.services.settings(self.database), gateway_id, hub=self.hub)
        link.start(
            will=(self.topic(workshop, GatewayKind.STATUS), b"will"),
            confirm_topic=confirm_topic(self.site, workshop, gateway_id),
        )
        return link

    def topic(self, workshop: str, kind: GatewayKind = GatewayKind.HEARTBEAT) -> str:
        return gateway_topic(self.site, workshop, self.gateway_ids[workshop], kind)

    def watcher(self) -> MqttProbe:
        """A new admin connection (one cut off by the broker's restart stays so), subscribed to the links'
        heartbeat topics."""
        probe = MqttProbe(self.services.settings(self.database, identity=self.admin).mqtt).connect()
        self.watchers.append(probe)
        for workshop in self.links:
            probe.subscribe(self.topic(workshop))
        return probe

    def publish_and_wait_for_pubacks(self, count: int, tag: str) -> None:
        for workshop, link in self.links.items():
            for n in range(count):
                assert link.publish(self.topic(workshop), f"{tag}-{n}".encode(), retain=False)
        answered = dict.fromkeys(self.links, 0)

        def all_answered() -> bool:
            for workshop, link in self.links.items():
                answered[workshop] += link.take_pubacks()
            return all(n == count for n in answered.values())

        wait_until(all_answered, timeout_s=30, what=f"{count} PUBACKs per link", every_s=0.05)
        assert answered == dict.fromkeys(self.links, count)

    def confirm_each(self, watcher: MqttProbe, seqs: tuple[int, int]) -> None:
        """Each gateway gets its own confirmation, and no other's."""
        for workshop in self.links:
            gateway_id = self.gateway_ids[workshop]
            confirmation = Confirmation(
                site=self.site, workshop=workshop, gateway_id=gateway_id, worker="ingest-1", ranges=[seqs]
            )
            assert watcher.publish(confirm_topic(self.site, workshop, gateway_id), encode(confirmation)) == "Success"
        got: dict[str, list[Confirmation]] = {workshop: [] for workshop in self.links}

        def all_confirmed() -> bool:
            for workshop, link in self.links.items():
                got[workshop] += link.take_confirmations()
            return all(got.values())

        wait_until(all_confirmed, timeout_s=30, what="each link's confirmation", every_s=0.05)
        for workshop, confirmations in got.items():
            assert [(c.gateway_id, c.seqs()) for c in confirmations] == [
                (self.gateway_ids[workshop], list(range(seqs[0], seqs[1] + 1)))
            ]

    def wait_for_messages(self, watcher: MqttProbe, workshop: str, prefix: bytes, count: int) -> None:
        """The watcher got exactly ``count`` of the workshop's messages that begin with ``prefix``."""

        def seen() -> int:
            return sum(payload.startswith(prefix) for payload in watcher.received(self.topic(workshop)))

        wait_until(lambda: seen() >= count, timeout_s=30, what=f"{count} {prefix!r} messages of {workshop}")
        assert seen() == count

    def all_connected(self) -> bool:
        return all(link.is_connected() for link in self.links.values())

    def close(self) -> None:
        for link in self.links.values():
            link.stop()
        for probe in self.watchers:
            probe.close()


@pytest.fixture
def rig(services: Services, database: str) -> Iterator[Rig]:
    made = Rig(services, database)
    yield made
    made.close()
    if services.stack.mosquitto.pid() is None:  # the test failed while the broker was down: the next needs it
        services.stack.up()


def test_links_on_one_thread_are_answered_confirmed_reconnected_after_a_broker_restart_and_drained_at_stop(
    services: Services, rig: Rig
) -> None:
    for workshop in WORKSHOPS:
        rig.start(workshop)
    wait_until(rig.all_connected, timeout_s=30, what="every link to connect")
    assert [link.take_connects() for link in rig.links.values()] == [1] * len(WORKSHOPS)
    assert [t.name for t in threading.enumerate()].count(rig.hub_name) == 1, "one network thread for the links"
    watcher = rig.watcher()
    rig.publish_and_wait_for_pubacks(BURST, "before")
    for workshop in WORKSHOPS:
        rig.wait_for_messages(watcher, workshop, b"before-", BURST)
    rig.confirm_each(watcher, (1, BURST))

    services.stack.mosquitto.stop()
    wait_until(lambda: not any(link.is_connected() for link in rig.links.values()), timeout_s=60, what="links down")
    assert not rig.start(LATE).is_connected()
    services.stack.up()
    wait_until(rig.all_connected, timeout_s=60, what="every link to reconnect after the broker's restart")
    assert {w: link.take_connects() for w, link in rig.links.items()} == dict.fromkeys(rig.links, 1)

    watcher = rig.watcher()
    rig.publish_and_wait_for_pubacks(BURST, "after")
    rig.confirm_each(watcher, (BURST + 1, 2 * BURST))

    for workshop, link in rig.links.items():
        for n in range(AT_STOP):
            assert link.publish(rig.topic(workshop), f"at-stop-{n}".encode(), retain=False)
    for link in rig.links.values():
        link.stop()
        assert not link.is_connected()
    for workshop in rig.links:
        rig.wait_for_messages(watcher, workshop, b"at-stop-", AT_STOP)
    wait_until(
        lambda: rig.hub_name not in [t.name for t in threading.enumerate()],
        timeout_s=10,
        what="the network thread to end with its last link",
    )
