"""The cases generated from the contract (tests/contract_cases.py), published through a real Mosquitto by an
authenticated identity while a simulated plant runs through its gateways, into a real ingest worker and a real
alert worker: both survive every case, each bad case is dead-lettered by each worker with a stage and a
reason, each good case is stored as the oracle reads it, and the plant's data equal its ledger at the end."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import topic_matches_sub

from alerts.engine import read_filters
from ftel.contract.codec import MODEL_BY_KIND
from ftel.contract.topics import data_filter, dead_letter_topic, parse_topic
from ftel.mqtt import paho_client
from ftel.plant.layout import default_plant
from ftel.security.identities import Role
from ftel.settings import IngestSettings, Settings
from ftel.storage.points import to_points
from ftel.storage.query import InfluxQuery
from tests.contract_cases import Case, generate, oracle
from tests.integration.test_pipeline import pinned_start, simulate, wait_for_exact
from tests.support import Services, ftel_env, start_ftel, stop_processes, unique, wait_ready

pytestmark = pytest.mark.integration
HOUR_MS = 3_600_000


class DeadLetterTap:
    """Every dead letter on the given topics, as it arrives."""

    def __init__(self, settings: Settings, topics: list[str]) -> None:
        self.letters: dict[str, list[dict[str, object]]] = {t: [] for t in topics}
        self._lock = threading.Lock()
        self._client = paho_client(settings.mqtt, client_id="")
        self._client.on_message = self._on_message
        self._client.connect(settings.mqtt.host, settings.mqtt.port)
        self._client.loop_start()
        for topic in topics:
            self._client.subscribe(topic, qos=1)
        time.sleep(0.5)  # the SUBACKs: letters before them would not reach the tap

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.letters[message.topic].append(json.loads(message.payload))

    def seen(self, topic: str) -> set[tuple[str, int]]:
        with self._lock:
            return {(str(d["topic"]), int(d["size"])) for d in self.letters[topic]}  # type: ignore[call-overload]

    def all(self, topic: str) -> list[dict[str, object]]:
        with self._lock:
            return list(self.letters[topic])

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def publish_all(settings: Settings, cases: list[Case]) -> None:
    client = paho_client(settings.mqtt, client_id="")
    client.max_inflight_messages_set(200)
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    try:
        infos = [client.publish(case.topic, case.payload, qos=1) for case in cases]
        for info in infos:
            info.wait_for_publish(timeout=60)
    finally:
        client.disconnect()
        client.loop_stop()


def must_store(case: Case, limits: IngestSettings) -> bool:
    time_limits = limits.time_limits()
    return oracle(
        case,
        received_ms=int(time.time() * 1000),
        max_future_skew_ms=time_limits.max_future_skew_ms,
        max_age_ms=time_limits.max_age_ms,
    )


def stored_as_read(query: InfluxQuery, case: Case) -> bool:
    """InfluxDB holds each point the oracle reads from the case, with its fields."""
    model = MODEL_BY_KIND[parse_topic(case.topic).kind]
    for point in to_points(model.model_validate_json(case.payload)):  # type: ignore[arg-type]
        where = " AND ".join(f"\"{k}\" = '{v}'" for k, v in point.tags.items() if v)
        rows = query.rows(f'SELECT * FROM "{point.measurement}" WHERE {where} AND time = {point.time_ms}ms')
        if not rows or any(rows[0].get(k) != v for k, v in point.fields.items() if not isinstance(v, float)):
            return False
    return True


def settle(done: Callable[[], bool], timeout_s: float = 60) -> None:
    """Wait until ``done`` or the timeout; the assertion after it says what is missing."""
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.5)


@pytest.fixture
def processes() -> Iterator[list]:  # type: ignore[type-arg]
    running: list = []  # type: ignore[type-arg]
    yield running
    stop_processes(reversed(running), timeout_s=30)


def test_a_plant_under_the_generated_corpus_loses_nothing_and_neither_worker_stops(
    services: Services, database: str, tmp_path: Path, processes: list
) -> None:  # type: ignore[type-arg]
    plant = default_plant()
    services.grant_plant(plant)
    settings = services.settings(database)
    ingest_id = services.grant(unique("ingest"), Role.INGEST)
    alerts_id = services.grant(unique("alerts"), Role.ALERTS)
    env = ftel_env(settings, FTEL_INGEST__GROUP=database, FTEL_GATEWAY__STATE_DIR=str(tmp_path / "gateways"))
    processes.append(start_ftel(["ingest", "--worker-id", ingest_id], env, tmp_path / "ingest.log"))
    alert_env = ftel_env(services.settings(database, identity=alerts_id))
    alert_args = ["alerts", "run", "--state-dir", str(tmp_path / "alerts"), "--group", unique("alerts")]
    processes.append(start_ftel(alert_args, alert_env, tmp_path / "alerts.log"))
    wait_ready(tmp_path / "ingest.log")
    wait_ready(tmp_path / "alerts.log")
    admin = services.admin(database)
    tap = DeadLetterTap(admin, [dead_letter_topic(ingest_id), dead_letter_topic(alerts_id)])
    try:
        cases = generate(int(time.time() * 1000) - 600_000)
        start = pinned_start()
        gateways = simulate(env, start, "1h", 600, tmp_path / "sim.log")
        publish_all(services.settings(database, identity=services.grant(unique("hostile"), Role.ADMIN)), cases)
        assert gateways.wait(timeout=300) == 0, (tmp_path / "sim.log").read_text()

        limits = settings.ingest  # the limits the worker was started with (ftel_env)
        # What the broker hands ingest: every data topic (a topic of another shape reaches no subscriber).
        delivered = [c for c in cases if topic_matches_sub(data_filter(), c.topic)]
        bad = {(c.topic, len(c.payload)) for c in delivered if not must_store(c, limits)}
        settle(lambda: bad <= tap.seen(dead_letter_topic(ingest_id)))
        assert sorted(bad - tap.seen(dead_letter_topic(ingest_id)))[:5] == [], "bad cases not dead-lettered by ingest"
        assert tap.seen(dead_letter_topic(ingest_id)) == bad  # and nothing good
        assert all(d["reason"] and d["stage"] for d in tap.all(dead_letter_topic(ingest_id)))

        seen_by_alerts = {(t, n) for t, n in bad if any(topic_matches_sub(f, t) for f in read_filters(plant.site))}
        settle(lambda: seen_by_alerts <= tap.seen(dead_letter_topic(alerts_id)))
        assert sorted(seen_by_alerts - tap.seen(dead_letter_topic(alerts_id)))[:5] == [], "not dead-lettered by alerts"
        assert tap.seen(dead_letter_topic(alerts_id)) == seen_by_alerts

        query = InfluxQuery(admin.influx)
        good = [c for c in cases if must_store(c, limits)]
        missing = [c.name for c in good if not stored_as_read(query, c)]
        assert missing == [], f"{len(missing)} of {len(good)} good cases not stored as sent: {missing[:10]}"
        assert wait_for_exact(query, start, start + HOUR_MS) == []
        assert [p.poll() for p in processes] == [None, None], "a worker stopped"
    finally:
        tap.close()
