"""Gateways hear what is stored while an ingest worker drains a backlog, on the real broker and InfluxDB.

Mosquitto queues its PUBACKs to the worker behind the backlog it is sending it, and paho keeps at most 20
publications of QoS 1 in flight: confirmations sent at QoS 1 past the first 20 waited in the worker until the
whole backlog was read (docs/scale.md, "Confirmations during a drain"). Here the worker is held, before it takes
the backlog's last messages, until its gateways have heard of everything it stored so far: nothing from the broker
comes meanwhile, so only confirmations that needed nothing from it arrive."""

from __future__ import annotations

import json
import threading
import time
from typing import cast

import pytest

from ftel.contract import Confirmation
from ftel.contract.topics import MachineKind, confirm_topic, data_filter, health_topic, machine_topic, shared
from ftel.mqtt_transport import PahoTransport
from ftel.security.identities import Role
from ftel.settings import IngestSettings
from ingest.worker import IngestWorker
from tests.integration.test_transport_burst import make_session, queue_backlog
from tests.support import PINNED_DAY_MAX_AGE_S, MqttProbe, Services, unique, wait_until
from tests.unit.test_contract import GOOD

pytestmark = pytest.mark.integration
GATEWAYS = 3
BACKLOG = 12_000  # messages, GATEWAYS interleaved, each gateway's numbered 1, 2, 3, …
HELD_BEFORE = 2_000  # the worker is held when this many are still to take
HEARD_WITHIN_S = 30  # a generous limit for what comes at once with the fix and never without it


def backlog(site: str, gateway_ids: list[str]) -> list[tuple[str, bytes]]:
    out = []
    for n in range(BACKLOG):
        g, seq = n % GATEWAYS, n // GATEWAYS + 1
        workshop, machine = f"ws{g}", f"K{g}"
        body = GOOD | {"site": site, "workshop": workshop, "gateway_id": gateway_ids[g], "machine_id": machine}
        body |= {"seq": seq, "ts": cast(int, GOOD["ts"]) + seq}
        out.append((machine_topic(site, workshop, "knitting", machine, MachineKind.EVENT), json.dumps(body).encode()))
    return out


def test_gateways_hear_what_is_stored_before_the_worker_takes_the_rest_of_a_backlog(
    services: Services, database: str
) -> None:
    site, group = unique("drainc"), unique("g")
    gateway_ids = [unique(f"gw{g}") for g in range(GATEWAYS)]
    worker_id = services.grant(unique("ingest"), Role.INGEST)
    # Small batches and a small window: many confirmations before the backlog's end, whatever the timing.
    # Health at every pass of the worker's loop (not every 5 s), and small batches: many more passes, and healths,
    # than paho's in-flight window before the hold.
    ingest = IngestSettings(
        worker_id=worker_id,
        group=group,
        batch_size=100,
        max_unacked=300,
        max_age_s=PINNED_DAY_MAX_AGE_S,
        health_interval_s=0.0,
    )
    settings = services.settings(database, identity=worker_id, ingest=ingest)
    transport = PahoTransport(
        settings.mqtt, client_id=worker_id, session_expiry_s=600, receive_maximum=ingest.receive_maximum
    )
    # The session exists, then the backlog is queued for it while the worker is away.
    make_session(transport, shared(group, data_filter(site)))
    queue_backlog(services, database, backlog(site, gateway_ids))

    gateways = []
    for g, gateway_id in enumerate(gateway_ids):
        services.grant(gateway_id, Role.GATEWAY, site=site, workshop=f"ws{g}")
        gateway = MqttProbe(services.settings(database, identity=gateway_id).mqtt, client_id=gateway_id).connect()
        gateway.subscribe(confirm_topic(site, f"ws{g}", gateway_id))
        gateways.append(gateway)

    supervisor = MqttProbe(services.admin(database).mqtt).connect()
    supervisor.subscribe(health_topic("ingest", worker_id))

    def healths() -> int:
        return len(supervisor.received(health_topic("ingest", worker_id)))

    def heard() -> tuple[int, int]:
        """Confirmation messages the gateways received, and the sequence numbers they confirm."""
        received = [
            p for g, probe in enumerate(gateways) for p in probe.received(confirm_topic(site, f"ws{g}", gateway_ids[g]))
        ]
        return len(received), sum(len(Confirmation.model_validate_json(p).seqs()) for p in received)

    worker = IngestWorker(settings, transport=transport)
    held: dict[str, int] = {}

    def take(topic: str, payload: bytes, mid: int, qos: int) -> None:
        worker._on_message(topic, payload, mid, qos)  # noqa: SLF001 (what the worker's transport calls)
        if worker.stats.messages_in == BACKLOG - HELD_BEFORE:
            stored = worker.stats.confirmed  # released so far: what the gateways should hear of
            deadline = time.monotonic() + HEARD_WITHIN_S
            while heard()[1] < stored and time.monotonic() < deadline:
                time.sleep(0.05)
            messages, seqs = heard()
            published = worker.healths_published
            while healths() < published and time.monotonic() < deadline:
                time.sleep(0.05)
            held.update(stored=stored, messages=messages, heard=seqs, healths_published=published, healths=healths())

    transport.on_message = take
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: "heard" in held, timeout_s=300, what="the worker held before the backlog's end")
        assert held["heard"] == held["stored"], held
        # More than paho's in-flight window of QoS 1 publications (20) could have carried.
        assert held["messages"] > 20, held
        # And whoever watches the worker's health hears it while it drains, past the window too.
        assert held["healths"] == held["healths_published"] > 20, held
        wait_until(lambda: heard()[1] >= BACKLOG, timeout_s=300, what="every message confirmed")
    finally:
        stop.set()
        thread.join(60)
        for gateway in gateways:
            gateway.close()
        supervisor.close()
