"""The alert worker's shell with fakes for its ports (no services): the broker connection (a fake transport that
records what the worker does, in order), the InfluxDB writers and the webhook poster; the store is the real
sqlite one in a temporary directory, wrapped to record its commits. Acknowledged only after the commit, no
acknowledgement after a failure, redelivery after a lost connection, dead letters before the acknowledgement,
flow control, and the outbox's deliveries (an MQTT row delivered only after its PUBACK, a slow webhook that
does not hold up the stream). tests/integration/test_alerts_*.py prove the same on the real broker, InfluxDB
and receivers."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from alerts.delivery import INFLUX_SINK, MQTT_SINK
from alerts.lifecycle import AlertRecord, Status
from alerts.rules import AlertConfig, WebhookTarget, parse_config
from alerts.store import Store
from alerts.worker import STORE_FILE, AlertWorker, WorkerThread
from ftel.contract import encode, topic_of
from ftel.contract.models import GatewayStatus, Message
from ftel.contract.states import MachineState
from ftel.contract.topics import ALERT_PREFIX
from ftel.mqtt_transport import TransportError
from ftel.settings import IngestSettings, Settings
from tests.support import wait_until
from tests.unit.test_alerts_core import MIN, T0, change, common, heartbeat

SETTINGS = Settings(site="s", ingest=IngestSettings(max_age_s=10**9, max_future_skew_s=10**9))


@dataclass
class FakePublication:
    acknowledged: bool = False

    def is_published(self) -> bool:
        return self.acknowledged


@dataclass
class FakeTransport:
    """Delivers queued messages when the worker reads; the broker's PUBACKs come at once unless ``hold_pubacks``;
    ``lose`` makes the next poll find the connection gone."""

    on_message: Callable[[str, bytes, int, int], None] | None = None
    inbox: list[tuple[str, bytes, int]] = field(default_factory=list)
    log: list[tuple[str, object]] = field(default_factory=list)
    publications: list[tuple[str, bytes, bool, FakePublication]] = field(default_factory=list)
    hold_pubacks: bool = False
    granted: bool = True  # the broker's answer to the subscriptions
    lose: bool = False
    session_present: bool = False
    connects: int = 0
    reads_refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def connect(self) -> bool:
        with self.lock:
            self.connects += 1
            self.log.append(("connect", self.connects))
        return self.session_present

    def subscribe(self, topic_filter: str) -> None:
        self.log.append(("subscribe", topic_filter))

    def unsubscribe(self, topic_filter: str) -> None:
        self.log.append(("unsubscribe", topic_filter))

    def subscribed(self) -> bool:
        return self.granted

    def poll(self, timeout_s: float, *, read: bool) -> None:
        with self.lock:
            if self.lose:
                self.lose = False
                raise TransportError("lost the MQTT broker (a fake)")
            if not read:
                self.reads_refused += 1
            chosen, self.inbox = (self.inbox, []) if read else ([], self.inbox)
            if not self.hold_pubacks:
                for _, _, _, publication in self.publications:
                    publication.acknowledged = True
        assert self.on_message is not None
        for topic, payload, mid in chosen:
            self.on_message(topic, payload, mid, 1)
        threading.Event().wait(0.002)

    def ack(self, mid: int) -> None:
        self.log.append(("ack", mid))

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> FakePublication:
        publication = FakePublication()
        with self.lock:
            self.publications.append((topic, payload, retain, publication))
            self.log.append(("publish", topic))
        return publication

    def release_pubacks(self) -> None:
        with self.lock:
            for _, _, _, publication in self.publications:
                publication.acknowledged = True

    def disconnect(self) -> None:
        self.log.append(("disconnect", None))

    def wake(self) -> None:
        pass

    def close(self) -> None:
        self.log.append(("close", None))

    def send(self, *messages: tuple[str, bytes, int]) -> None:
        with self.lock:
            self.inbox.extend(messages)

    def acks(self) -> list[int]:
        return [mid for what, mid in list(self.log) if what == "ack"]  # type: ignore[misc]

    def published(self, prefix: str) -> list[tuple[str, bytes, bool, FakePublication]]:
        with self.lock:
            return [p for p in self.publications if p[0].startswith(prefix)]


class RecordingStore(Store):
    """The real store, whose commits go into the transport's log (to order them with the acks) and can fail."""

    def __init__(self, path: Path, log: list[tuple[str, object]]) -> None:
        super().__init__(path)
        self.log = log
        self.fail: Exception | None = None

    def commit(self, snapshot: str, items: list[tuple[str, str, str]], **rows: object) -> int:  # type: ignore[override]
        if self.fail is not None:
            raise self.fail
        added = super().commit(snapshot, items, **rows)  # type: ignore[arg-type]
        self.log.append(("commit", [sink for sink, _, _ in items]))
        return added


@dataclass
class FakeWriter:
    bodies: list[bytes] = field(default_factory=list)

    def write(self, body: bytes) -> None:
        self.bodies.append(body)

    def close(self) -> None:
        pass


@dataclass
class FakeReceiver:
    """A webhook receiver that answers only when ``gate`` is open."""

    bodies: list[str] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    def post(self, target: WebhookTarget, body: str) -> None:
        self.gate.wait(30)
        self.bodies.append(body)


def alert_config(state_dir: Path, **worker: object) -> AlertConfig:
    return parse_config(
        {
            "hold_down_s": 60,
            "rules": [{"name": "down", "kind": "machine_down", "minutes": 10}],
            "webhooks": [{"name": "board", "url": "http://192.0.2.1/alerts", "allow_hosts": ["192.0.2.1"]}],
            "worker": {
                "state_dir": str(state_dir),
                "flush_interval_s": 0.01,
                "reconnect_s": 0.01,
                "rebuild_quiet_s": 0.01,
                **worker,
            },
        }
    )


def wire(message: Message, mid: int) -> tuple[str, bytes, int]:
    return topic_of(message), encode(message), mid


def firing(first_mid: int = 1) -> list[tuple[str, bytes, int]]:
    """A machine DOWN for longer than the rule allows: one alert fires at the second heartbeat."""
    messages = [change(T0, MachineState.DOWN, "yarn_break"), heartbeat(T0 + 9 * MIN), heartbeat(T0 + 11 * MIN)]
    return [wire(m, first_mid + n) for n, m in enumerate(messages)]


@dataclass
class Rig:
    worker: AlertWorker
    transport: FakeTransport
    store: RecordingStore
    influx: FakeWriter
    receiver: FakeReceiver
    stop: threading.Event
    thread: threading.Thread
    errors: list[BaseException]


def make_rig(tmp_path: Path, **worker_options: object) -> Rig:
    transport = FakeTransport()
    store = RecordingStore(tmp_path / STORE_FILE, transport.log)
    influx, receiver = FakeWriter(), FakeReceiver()
    worker = AlertWorker(
        SETTINGS,
        alert_config(tmp_path, **worker_options),
        transport=transport,
        store=store,
        alert_writer=influx,
        post=receiver.post,
    )
    stop, errors = threading.Event(), []

    def main() -> None:
        try:
            worker.run(stop)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=main, daemon=True)
    return Rig(worker, transport, store, influx, receiver, stop, thread, errors)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = make_rig(tmp_path)
    rig.thread.start()
    wait_until(rig.worker.subscribed.is_set, timeout_s=5, what="subscribed", every_s=0.01)
    yield rig
    rig.receiver.gate.set()
    rig.transport.release_pubacks()
    rig.stop.set()
    rig.thread.join(10)
    assert not rig.thread.is_alive()
    assert rig.errors == []


def test_a_new_worker_rebuilds_from_retained_alerts_then_subscribes(rig: Rig) -> None:
    kinds = [(what, value) for what, value in rig.transport.log if what in ("subscribe", "unsubscribe")]
    assert kinds[:2] == [("subscribe", f"{ALERT_PREFIX}/+"), ("unsubscribe", f"{ALERT_PREFIX}/+")]
    data = [value for what, value in kinds[2:] if what == "subscribe" and value.startswith("$share/alerts/")]
    # The kinds the rules read, each shared in the worker's group; not the windows nor the roll-ups.
    assert data == [
        "$share/alerts/ftel/v1/s/+/+/+/meta",
        "$share/alerts/ftel/v1/s/+/+/+/event",
        "$share/alerts/ftel/v1/s/+/+/+/telemetry",
        "$share/alerts/ftel/v1/s/+/gateway/+/status",
        "$share/alerts/ftel/v1/s/+/gateway/+/heartbeat",
    ]
    assert ("unsubscribe", "$share/alerts/ftel/v1/s/+/+/+/+") not in kinds  # a new session has nothing to undo


def test_a_resumed_session_gives_up_the_whole_stream_before_it_subscribes(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.transport.session_present = True
    rig.thread.start()
    try:
        wait_until(rig.worker.subscribed.is_set, timeout_s=5, what="subscribed", every_s=0.01)
    finally:
        rig.stop.set()
        rig.thread.join(10)
    kinds = [(what, value) for what, value in rig.transport.log if what in ("subscribe", "unsubscribe")]
    # A session from before the worker read only what its rules read would get every sample twice.
    gave_up = kinds.index(("unsubscribe", "$share/alerts/ftel/v1/s/+/+/+/+"))
    assert gave_up < kinds.index(("subscribe", "$share/alerts/ftel/v1/s/+/+/+/telemetry"))
    assert rig.errors == []


def test_messages_are_acknowledged_only_after_the_commit_that_covers_them(rig: Rig) -> None:
    rig.transport.send(*firing())
    wait_until(lambda: sorted(rig.transport.acks()) == [1, 2, 3], timeout_s=5, what="three acks", every_s=0.01)
    log = rig.transport.log
    for mid in (1, 2, 3):
        acked_at = log.index(("ack", mid))
        assert any(what == "commit" for what, _ in log[:acked_at]), "an ack before any commit"
    # The commit before the last ack holds the alert's outbox rows: the alert cannot be lost once acked.
    last_commit = max(n for n, (what, _) in enumerate(log[: log.index(("ack", 3))]) if what == "commit")
    assert set(log[last_commit][1]) >= {MQTT_SINK, INFLUX_SINK, "webhook:board"}  # type: ignore[arg-type]


@pytest.mark.logs_exceptions
def test_a_failed_commit_stops_the_worker_and_acknowledges_nothing(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.thread.start()
    wait_until(rig.worker.subscribed.is_set, timeout_s=5, what="subscribed", every_s=0.01)
    rig.store.fail = sqlite3.OperationalError("disk I/O error")
    rig.transport.send(*firing())
    rig.thread.join(10)
    assert not rig.thread.is_alive()
    assert [type(e) for e in rig.errors] == [sqlite3.OperationalError]
    assert rig.transport.acks() == []
    assert ("disconnect", None) in rig.transport.log  # the broker keeps them for the next start


def test_after_a_lost_connection_nothing_of_it_is_acknowledged_and_the_redelivery_is(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, flush_max_messages=3, flush_interval_s=3600)
    rig.thread.start()
    wait_until(rig.worker.subscribed.is_set, timeout_s=5, what="subscribed", every_s=0.01)
    try:
        first, second, third = firing()
        rig.transport.send(first, second)
        wait_until(lambda: rig.worker.messages_seen == 2, timeout_s=5, what="two messages", every_s=0.01)
        rig.transport.lose = True
        wait_until(lambda: rig.transport.connects == 2, timeout_s=5, what="a reconnect", every_s=0.01)
        assert rig.transport.acks() == []
        rig.transport.send(first, second, third)  # the broker hands them out again, and the next
        wait_until(lambda: len(rig.transport.acks()) == 3, timeout_s=5, what="three acks", every_s=0.01)
        reconnected = rig.transport.log.index(("connect", 2))
        assert all(rig.transport.log.index(("ack", mid)) > reconnected for mid in (1, 2, 3))
        # The redelivered messages recompute the same alert: delivered once.
        wait_until(lambda: len(rig.receiver.bodies) == 1, timeout_s=5, what="the webhook", every_s=0.01)
        # A row is marked delivered after its receiver took it: wait for the marks, then nothing is left.
        wait_until(lambda: rig.store.pending() == 0, timeout_s=5, what="every row delivered", every_s=0.01)
        assert len(rig.receiver.bodies) == 1
    finally:
        rig.stop.set()
        rig.thread.join(10)
    assert rig.errors == []


def test_a_dead_letter_is_acknowledged_by_the_broker_before_its_message_is(rig: Rig) -> None:
    rig.transport.hold_pubacks = True
    rig.transport.send(("ftel/v1/s/w/knitting/K1/event", b"not json", 1), *firing(first_mid=2))
    wait_until(lambda: rig.transport.published("ftel/v1/deadletter/"), timeout_s=5, what="a dead letter")
    # The alert the last message fires reaches InfluxDB: every message before it is committed.
    wait_until(lambda: rig.influx.bodies, timeout_s=5, what="the commit", every_s=0.01)
    assert rig.transport.acks() == [], "acknowledged while its dead letter was not with the broker"
    (_, body, _, _), *_ = rig.transport.published("ftel/v1/deadletter/")
    assert json.loads(body)["stage"] == "parse"
    rig.transport.release_pubacks()
    wait_until(lambda: sorted(rig.transport.acks()) == [1, 2, 3, 4], timeout_s=5, what="the acks", every_s=0.01)


def test_an_alert_row_is_delivered_to_mqtt_only_after_its_puback(rig: Rig) -> None:
    rig.transport.hold_pubacks = True
    rig.transport.send(*firing())
    wait_until(lambda: rig.transport.published(f"{ALERT_PREFIX}/"), timeout_s=5, what="the alert's publication")
    (topic, body, retain, _), *_ = rig.transport.published(f"{ALERT_PREFIX}/")
    record = AlertRecord.model_validate_json(body)
    assert (topic, retain, record.status) == (f"{ALERT_PREFIX}/{record.alert_id}", True, Status.FIRING)
    wait_until(lambda: rig.store.pending(INFLUX_SINK) == 0, timeout_s=5, what="InfluxDB's delivery", every_s=0.01)
    assert rig.store.pending(MQTT_SINK) == 1
    rig.transport.release_pubacks()
    wait_until(lambda: rig.store.pending(MQTT_SINK) == 0, timeout_s=5, what="the MQTT delivery", every_s=0.01)
    assert len(rig.transport.published(f"{ALERT_PREFIX}/")) == 1
    (line,) = b"".join(rig.influx.bodies).decode().splitlines()
    assert line.startswith("alerts,")
    assert record.alert_id in line


def test_an_alert_leaves_without_waiting_for_the_pubacks_of_those_before_it(rig: Rig) -> None:
    rig.transport.hold_pubacks = True
    rig.transport.send(*firing())

    def published() -> list[tuple[str, bytes, bool, FakePublication]]:
        return rig.transport.published(f"{ALERT_PREFIX}/")

    wait_until(lambda: len(published()) == 1, timeout_s=5, what="the firing's publication", every_s=0.01)
    # The machine runs again: the alert resolves while the broker has not answered the firing yet.
    back = [change(T0 + 12 * MIN, MachineState.RUNNING, None), heartbeat(T0 + 13 * MIN)]
    rig.transport.send(*(wire(m, 4 + n) for n, m in enumerate(back)))
    wait_until(lambda: len(published()) == 2, timeout_s=5, what="the resolution's publication", every_s=0.01)
    assert [AlertRecord.model_validate_json(body).status for _, body, _, _ in published()] == [
        Status.FIRING,
        Status.RESOLVED,
    ]
    assert rig.store.pending(MQTT_SINK) == 2  # neither is delivered before its PUBACK
    rig.transport.release_pubacks()
    wait_until(lambda: rig.store.pending(MQTT_SINK) == 0, timeout_s=5, what="the MQTT delivery", every_s=0.01)
    assert len(published()) == 2  # and nothing went twice


def test_a_slow_webhook_holds_up_neither_the_stream_nor_the_other_sinks(rig: Rig) -> None:
    rig.receiver.gate.clear()  # the receiver does not answer
    rig.transport.send(*firing())
    wait_until(lambda: rig.store.pending(MQTT_SINK) == 0, timeout_s=5, what="the MQTT delivery", every_s=0.01)
    wait_until(lambda: rig.store.pending(INFLUX_SINK) == 0, timeout_s=5, what="InfluxDB's delivery", every_s=0.01)
    more = [wire(heartbeat(T0 + (12 + n) * MIN), 10 + n) for n in range(20)]
    rig.transport.send(*more)
    wait_until(lambda: len(rig.transport.acks()) == 23, timeout_s=5, what="every message acked", every_s=0.01)
    assert rig.receiver.bodies == []
    assert rig.store.pending("webhook:board") == 1
    rig.receiver.gate.set()
    wait_until(lambda: rig.store.pending("webhook:board") == 0, timeout_s=5, what="the webhook", every_s=0.01)
    assert json.loads(rig.receiver.bodies[0])["rule"] == "down"


def test_a_gateways_last_will_is_judged_but_its_offline_points_are_left_to_ingest(rig: Rig) -> None:
    will = GatewayStatus(**common, ts=T0 + 60_000, online=False, will=True, boot_id=T0)
    rig.transport.send(wire(heartbeat(T0), 1), wire(will, 2), wire(will, 3))
    wait_until(lambda: sorted(rig.transport.acks()) == [1, 2, 3], timeout_s=5, what="every message acked", every_s=0.01)
    assert rig.worker.engine.state.gateways["s/w/gw-1"].dead_since_ms == T0 + 60_000  # the will is newer
    assert rig.worker.sinks == [MQTT_SINK, INFLUX_SINK, "webhook:board"]  # none for deaths: ingest writes them
    assert not any(b"machine_state" in body or b"gateway_status" in body for body in rig.influx.bodies)


def test_the_worker_stops_reading_while_max_unacked_messages_wait_for_a_commit(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, max_unacked=3, flush_max_messages=1000, flush_interval_s=3600)
    rig.thread.start()
    wait_until(rig.worker.subscribed.is_set, timeout_s=5, what="subscribed", every_s=0.01)
    try:
        rig.transport.send(*firing())
        wait_until(lambda: rig.worker.messages_seen == 3, timeout_s=5, what="three messages", every_s=0.01)
        rig.transport.send(*firing(first_mid=4))
        wait_until(lambda: rig.transport.reads_refused > 3, timeout_s=5, what="reads refused", every_s=0.01)
        assert rig.worker.messages_seen == 3
        assert rig.transport.acks() == []
    finally:
        rig.stop.set()
        rig.thread.join(10)
    assert rig.errors == []
    # A clean stop commits and acknowledges what it took, and only that; the broker keeps the rest.
    assert sorted(rig.transport.acks()) == [1, 2, 3]


def test_a_stop_during_the_rebuild_commits_and_acknowledges_nothing(tmp_path: Path) -> None:
    """Else the next start would find a store and skip the rebuild, missing the retained alerts."""
    rig = make_rig(tmp_path, rebuild_max_s=60)
    rig.transport.granted = False  # the broker has not answered the rebuild's subscription yet
    rig.thread.start()
    try:
        rig.transport.send(*firing())  # a resumed session's backlog, held until the rebuild ends
        wait_until(lambda: rig.transport.inbox == [], timeout_s=5, what="the backlog read", every_s=0.01)
    finally:
        rig.stop.set()
        rig.thread.join(10)
    assert rig.errors == []
    assert rig.transport.acks() == []
    assert [what for what, _ in rig.transport.log if what == "commit"] == []
    assert Store(tmp_path / STORE_FILE).snapshot() is None


def test_worker_thread_runs_and_stops_the_worker(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    thread = WorkerThread(rig.worker).start()
    wait_until(rig.worker.subscribed.is_set, timeout_s=5, what="subscribed", every_s=0.01)
    thread.stop(10)
    assert ("close", None) in rig.transport.log
