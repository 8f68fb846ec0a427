"""The ingest worker's logic with a fake transport and a fake InfluxDB writer (no services): acknowledge only
after the write, confirm before acknowledging, hold back while InfluxDB refuses, dead-letter only the refused
lines, stop reading while too much is unacknowledged. The integration and fault suites prove the same on the
real broker and the real InfluxDB."""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import cast

import pytest

from ftel.contract import Confirmation
from ftel.mqtt_transport import Publication, Qos
from ftel.settings import IngestSettings, Settings
from ftel.storage.writer import Refusal, WriteError
from ingest.batch import Held
from ingest.worker import IngestWorker
from tests.support import wait_until
from tests.unit.test_contract import GOOD, TOPIC


class _Sent:
    def is_published(self) -> bool:
        return True


_SENT = _Sent()


@dataclass
class FakeTransport:
    """Delivers queued messages when the worker reads; records what the worker does, in order.

    ``wire`` is what reaches the broker, in order, as paho sends it: a QoS 1 publication needs one of
    ``in_flight`` slots, freed by the broker's PUBACK, and waits unsent for one; acknowledgements and QoS 0
    publications go at once. As Mosquitto does while it sends a backlog, PUBACKs come only once the inbox is
    empty. ``burst``: at most this many messages handed over per poll (None: the whole inbox)."""

    inbox: list[tuple[str, bytes, int]] = field(default_factory=list)
    log: list[tuple[str, object]] = field(default_factory=list)
    publications: list[tuple[str, bytes, bool]] = field(default_factory=list)
    qos_of_publications: list[int] = field(default_factory=list)  # beside ``publications``
    wire: list[tuple[str, str, bytes, int]] = field(default_factory=list)  # what, topic, payload, mid
    in_flight: int = 20
    burst: int | None = None
    waiting: list[tuple[str, bytes]] = field(default_factory=list)  # QoS 1, for a slot
    unacknowledged: int = 0  # QoS 1 on the wire, awaiting their PUBACK
    reads_refused: int = 0
    connects: int = 0
    on_message: Callable[[str, bytes, int, int], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    wakeup: threading.Event = field(default_factory=threading.Event)

    def connect(self) -> bool:
        self.connects += 1
        self.log.append(("connect", self.connects))
        return True

    def subscribe(self, topic_filter: str) -> None:
        self.log.append(("subscribe", topic_filter))

    def subscribed(self) -> bool:
        return True

    def poll(self, timeout_s: float, *, read: bool) -> None:
        if not read:
            self.reads_refused += 1
        with self.lock:
            chosen = list(self.inbox[: self.burst]) if read else []
            del self.inbox[: len(chosen)]
            if not self.inbox:  # the backlog is read: the broker's PUBACKs come, and what waited goes
                self.unacknowledged = 0
                self._send_waiting()
        assert self.on_message is not None
        for topic, payload, mid in chosen:
            self.wire.append(("taken", "", b"", mid))
            self.on_message(topic, payload, mid, 1)
        self.wakeup.wait(0.005)
        self.wakeup.clear()

    def ack(self, mid: int) -> None:
        self.log.append(("ack", mid))
        self.wire.append(("ack", "", b"", mid))

    def unsubscribe(self, topic_filter: str) -> None:
        self.log.append(("unsubscribe", topic_filter))

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: Qos = 1) -> Publication:
        self.log.append(("publish", (topic, payload, retain)))
        self.publications.append((topic, payload, retain))
        self.qos_of_publications.append(qos)
        with self.lock:
            if qos:
                self.waiting.append((topic, payload))
                self._send_waiting()
            else:
                self.wire.append(("publish", topic, payload, 0))
        return _SENT

    def _send_waiting(self) -> None:
        while self.waiting and self.unacknowledged < self.in_flight:
            self.unacknowledged += 1
            self.wire.append(("publish", *self.waiting.pop(0), 0))

    def disconnect(self) -> None:
        self.log.append(("disconnect", None))

    def wake(self) -> None:
        self.wakeup.set()

    def close(self) -> None:
        self.log.append(("close", None))

    def send(self, *messages: tuple[str, bytes, int]) -> None:
        with self.lock:
            self.inbox.extend(messages)

    def entries(self, kind: str) -> list[object]:
        return [value for what, value in list(self.log) if what == kind]

    def published(self, prefix: str) -> list[tuple[str, bytes, bool]]:
        return [p for p in self.publications if p[0].startswith(prefix)]


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


@dataclass
class FakeWriter:
    """Stores bodies; refuses as told (``refuse`` returns a WriteError for a body, or None)."""

    bodies: list[bytes] = field(default_factory=list)
    refuse: Callable[[bytes], WriteError | None] = lambda body: None
    gate: threading.Event = field(default_factory=_set_event)

    def write(self, body: bytes) -> None:
        self.gate.wait(10)
        error = self.refuse(body)
        if error is not None:
            raise error
        self.bodies.append(body)

    def close(self) -> None:
        pass

    def lines(self) -> list[str]:
        return [line for body in self.bodies for line in split_lines(body.decode())]


def split_lines(body: str) -> list[str]:
    """Line protocol's lines: a newline inside a quoted string field (a dead letter's payload) is not one."""
    lines, start, quoted, escaped = [], 0, False, False
    for at, char in enumerate(body):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "\n" and not quoted:
            lines.append(body[start:at])
            start = at + 1
    lines.append(body[start:])
    return lines


def message(seq: int, **changes: object) -> tuple[str, bytes, int]:
    return TOPIC, json.dumps({**GOOD, "seq": seq, "ts": cast(int, GOOD["ts"]) + seq, **changes}).encode(), seq


@pytest.fixture
def rig() -> Iterator[tuple[IngestWorker, FakeTransport, FakeWriter, threading.Event]]:
    transport, writer = FakeTransport(), FakeWriter()
    ingest = IngestSettings(
        worker_id="w-1",
        flush_interval_s=0.01,
        health_interval_s=3600,
        max_unacked=5,
        batch_size=5,
        max_age_s=10**9,
        max_future_skew_s=10**9,
    )
    worker = IngestWorker(Settings(ingest=ingest), transport=transport, writer=writer)
    transport.on_message = worker._on_message
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    yield worker, transport, writer, stop
    writer.gate.set()
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_messages_are_acknowledged_only_after_their_batch_is_written_and_confirmed_first(rig) -> None:  # type: ignore[no-untyped-def]
    worker, transport, writer, _ = rig
    writer.gate.clear()  # InfluxDB takes its time
    transport.send(message(1), message(2), message(3))
    wait_until(lambda: worker.stats.messages_in == 3, timeout_s=5, what="three messages in", every_s=0.01)
    assert transport.entries("ack") == []
    writer.gate.set()
    wait_until(lambda: len(transport.entries("ack")) == 3, timeout_s=5, what="three acks", every_s=0.01)
    assert sorted(transport.entries("ack")) == [1, 2, 3]
    assert sum(1 for line in writer.lines() if line.startswith("machine_state,")) == 3
    kinds = [what for what, value in transport.log if what == "ack" or (what == "publish" and "confirm" in value[0])]
    assert kinds[0] == "publish", "the gateway is told what is stored before the broker is acknowledged"
    (topic, payload, _), *_ = transport.published("ftel/v1/confirm/")
    assert topic == "ftel/v1/confirm/qinghe/knit/gw-knit"
    assert Confirmation.model_validate_json(payload).ranges == [(1, 3)]


def test_the_worker_stops_reading_while_too_much_is_unacknowledged(rig) -> None:  # type: ignore[no-untyped-def]
    worker, transport, writer, _ = rig
    writer.gate.clear()
    transport.send(*(message(seq) for seq in range(1, 6)))
    wait_until(lambda: worker.stats.messages_in == 5, timeout_s=5, what="five messages in", every_s=0.01)
    transport.send(*(message(seq) for seq in range(6, 20)))
    wait_until(lambda: transport.reads_refused > 3, timeout_s=5, what="reads refused", every_s=0.01)
    assert worker.stats.messages_in == 5
    assert transport.entries("ack") == []
    writer.gate.set()
    wait_until(lambda: len(transport.entries("ack")) == 19, timeout_s=10, what="every message acked", every_s=0.01)


def test_a_stored_batch_is_let_go_once_it_is_released(rig) -> None:  # type: ignore[no-untyped-def]
    """Nothing keeps a released batch alive (the writer thread kept its last one while it waited for the next:
    a third batch of messages on top of the two ``max_unacked`` bounds)."""
    _worker, transport, _writer, _ = rig
    sent = [message(seq) for seq in range(4_200_001, 4_200_004)]  # seqs of this test's own
    payloads = {payload for _, payload, _ in sent}
    transport.send(*sent)
    wait_until(lambda: len(transport.entries("ack")) == 3, timeout_s=5, what="three acks", every_s=0.01)

    def let_go() -> bool:
        gc.collect()
        return not [o for o in gc.get_objects() if isinstance(o, Held) and o.payload in payloads]

    wait_until(let_go, timeout_s=5, what="no batch holding the stored messages", every_s=0.05)


def test_gateways_hear_what_is_stored_while_a_backlog_is_drained_before_its_acknowledgement(rig) -> None:  # type: ignore[no-untyped-def]
    """A backlog of 200 messages of one gateway, 5 to a batch: 40 confirmations, more than paho's 20 in-flight
    slots, while the broker's PUBACKs wait behind the backlog (the fake's wire). Each confirmation reaches the
    broker before the acknowledgements of the messages it covers, and before the backlog's last message is
    taken; at QoS 1 the 21st and later waited until the backlog was read, after their acknowledgements."""
    _worker, transport, _writer, _ = rig
    transport.burst = 5
    backlog = [message(seq) for seq in range(1, 201)]
    transport.send(*backlog)
    wait_until(lambda: len(transport.entries("ack")) == 200, timeout_s=10, what="every message acked", every_s=0.01)
    confirmed: set[int] = set()
    confirmations = 0
    wire = list(transport.wire)
    last_taken = max(at for at, (what, *_) in enumerate(wire) if what == "taken")
    for at, (what, topic, payload, mid) in enumerate(wire):
        if what == "publish" and topic.startswith("ftel/v1/confirm/"):
            confirmed.update(Confirmation.model_validate_json(payload).seqs())
            confirmations += at < last_taken
        elif what == "ack":
            assert mid in confirmed, f"message {mid} acknowledged before its confirmation left"
    assert confirmations > transport.in_flight, "the gateway heard of what was stored only after the backlog"


def test_the_last_word_of_a_clean_stop_is_one_the_broker_acknowledges_before_the_worker_goes(rig) -> None:  # type: ignore[no-untyped-def]
    """Its periodic health goes at QoS 0 (nothing waits for it during a drain); its last health goes at QoS 1, whose
    PUBACK the transport's disconnect waits for, so the broker has it once the worker has gone (at QoS 0 a watcher's
    later message on another connection could reach the broker first)."""
    _worker, transport, _writer, stop = rig
    transport.send(message(1), message(2))
    wait_until(lambda: len(transport.entries("ack")) == 2, timeout_s=5, what="two acks", every_s=0.01)
    stop.set()
    wait_until(lambda: ("disconnect", None) in transport.log, timeout_s=5, what="a disconnect", every_s=0.01)
    health_topic = "ftel/v1/health/ingest/w-1"
    healths = [
        (payload, qos)
        for (topic, payload, _), qos in zip(transport.publications, transport.qos_of_publications, strict=True)
        if topic == health_topic
    ]
    *periodic, (last_payload, last_qos) = healths
    assert periodic  # the first one at the session's start
    assert {qos for _, qos in periodic} == {0}
    assert last_qos == 1
    last = json.loads(last_payload)
    assert (last["state"], last["unacked"], last["messages_in"]) == ("ok", 0, 2)
    assert transport.log.index(("publish", (health_topic, last_payload, True))) < transport.log.index(
        ("disconnect", None)
    )


def test_dead_letters_leave_while_a_backlog_is_drained_before_their_acknowledgement(rig) -> None:  # type: ignore[no-untyped-def]
    """A backlog of 200 messages, every other one refused (a seq past the contract's bound): 100 dead letters, more
    than paho's 20 in-flight slots, while the broker's PUBACKs wait behind the backlog. Each dead letter is on the
    wire before its message's acknowledgement, and more than 20 leave before the backlog's last message is taken; at
    QoS 1 the 21st and later waited in the worker until the backlog was read."""
    _worker, transport, _writer, _ = rig
    transport.burst = 5
    backlog = [message(seq) if seq % 2 else message(2**63, ts=1_700_000_000_000 + seq) for seq in range(1, 201)]
    backlog = [(topic, payload, mid) for (topic, payload, _), mid in zip(backlog, range(1, 201), strict=True)]
    transport.send(*backlog)
    wait_until(lambda: len(transport.entries("ack")) == 200, timeout_s=10, what="every message acked", every_s=0.01)
    wire = list(transport.wire)
    last_taken = max(at for at, (what, *_) in enumerate(wire) if what == "taken")
    letters_at = [at for at, (what, topic, *_) in enumerate(wire) if what == "publish" and "/deadletter/" in topic]
    assert len(letters_at) == 100
    assert sum(at < last_taken for at in letters_at) > transport.in_flight, "dead letters waited for the backlog"
    refused_acks = [at for at, (what, _, _, mid) in enumerate(wire) if what == "ack" and mid % 2 == 0]
    assert all(letter < ack for letter, ack in zip(letters_at, refused_acks, strict=True))


def test_blocking_refusals_hold_everything_and_resume_by_themselves(rig) -> None:  # type: ignore[no-untyped-def]
    worker, transport, writer, _ = rig
    missing = WriteError('InfluxDB answered 404: database not found: "ftel"', refusal=Refusal.BLOCKING, status=404)
    writer.refuse = lambda body: missing
    transport.send(message(1), message(2))
    wait_until(lambda: worker.stats.blocked == 1, timeout_s=5, what="the worker to block", every_s=0.01)
    wait_until(lambda: ("disconnect", None) in transport.log, timeout_s=5, what="a disconnect", every_s=0.01)
    assert transport.entries("ack") == []
    assert transport.published("ftel/v1/confirm/") == []
    health = json.loads(transport.published("ftel/v1/health/ingest/w-1")[-1][1])
    assert health["state"] == "blocked"
    assert "database not found" in health["reason"]
    assert transport.published("ftel/v1/health/ingest/w-1")[-1][2] is True  # retained: readable while blocked
    assert transport.qos_of_publications[transport.publications.index(transport.published("ftel/v1/health/")[-1])] == 1
    writer.refuse = lambda body: None  # the database is created
    wait_until(
        lambda: worker.stats.blocked == 0 and transport.connects == 2, timeout_s=10, what="resumed", every_s=0.05
    )
    transport.send(message(1), message(2))  # the broker hands them out again on the new connection
    wait_until(lambda: len(transport.entries("ack")) == 2, timeout_s=5, what="acks after resuming", every_s=0.01)


def test_only_the_lines_influxdb_refuses_become_dead_letters(rig) -> None:  # type: ignore[no-untyped-def]
    _worker, transport, writer, _ = rig

    def refuse(body: bytes) -> WriteError | None:
        if b"prev_duration_ms=666" in body:
            return WriteError(
                "InfluxDB answered 400: partial write: field type conflict", refusal=Refusal.LINES, status=400
            )
        return None

    writer.refuse = refuse
    transport.send(message(1), message(2, prev_duration_ms=666), message(3))
    wait_until(lambda: len(transport.entries("ack")) == 3, timeout_s=5, what="three acks", every_s=0.01)
    (letter,) = transport.published("ftel/v1/deadletter/w-1")
    body = json.loads(letter[1])
    assert "field type conflict" in body["reason"]
    assert '"seq": 2' in body["payload"]
    stored = [line for line in writer.lines() if line.startswith("machine_state,")]
    assert len(stored) == 2
    assert all("prev_duration_ms=666" not in line for line in stored)
    assert any(line.startswith("dead_letter,") for line in writer.lines())
    # The refused message is confirmed all the same: its gateway must not send it forever.
    confirmed = [Confirmation.model_validate_json(p).seqs() for _, p, _ in transport.published("ftel/v1/confirm/")]
    assert sorted(seq for seqs in confirmed for seq in seqs) == [1, 2, 3]


def _dead_letters(transport: FakeTransport) -> list[dict[str, object]]:
    return [json.loads(p) for _, p, _ in transport.published("ftel/v1/deadletter/w-1")]


def _confirmed(transport: FakeTransport) -> list[int]:
    confirmations = [Confirmation.model_validate_json(p) for _, p, _ in transport.published("ftel/v1/confirm/")]
    return sorted(seq for c in confirmations for seq in c.seqs())


def test_a_seq_past_the_contracts_bound_is_dead_lettered_not_confirmed_and_the_worker_goes_on(rig) -> None:  # type: ignore[no-untyped-def]
    worker, transport, _writer, stop = rig
    transport.send(message(1), message(2**63), message(3))
    wait_until(lambda: len(transport.entries("ack")) == 3, timeout_s=5, what="three acks", every_s=0.01)
    (letter,) = _dead_letters(transport)
    assert letter["stage"] == "validate"
    assert letter["error_type"] == "ContractError"
    assert "seq" in str(letter["reason"])
    assert _confirmed(transport) == [1, 3]  # the gateway is told nothing about a seq it cannot have sent
    assert not stop.is_set()
    assert worker.stats.dead_letters == 1


@pytest.mark.parametrize("depth", [10, 199, 202, 999, 1000, 30_000])
def test_a_payload_nested_at_any_depth_is_dead_lettered_by_the_one_parser(rig, depth: int) -> None:  # type: ignore[no-untyped-def]
    _worker, transport, _writer, _ = rig
    nested = json.dumps({**GOOD, "seq": 2}).encode()[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
    transport.send(message(1), (TOPIC, nested, 2), message(3))
    wait_until(lambda: len(transport.entries("ack")) == 3, timeout_s=5, what="three acks", every_s=0.01)
    (letter,) = _dead_letters(transport)
    assert letter["stage"] in ("parse", "validate")
    if depth > 201:
        assert "recursion limit" in str(letter["reason"])
        assert _confirmed(transport) == [1, 3]  # unread, so its sender is unknown
    else:
        assert "x" in str(letter["reason"])  # an extra key: the sender was read from the same parse
        assert _confirmed(transport) == [1, 2, 3]


@pytest.mark.logs_exceptions
def test_a_fault_after_judging_is_dead_lettered_with_its_stage_and_not_confirmed(rig, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Any error while one message is handled stays with that message (here a fault injected where its lines
    are made): dead-lettered with the stage and the error's type, acknowledged, not confirmed (its gateway
    keeps its copy and sends it again), and the worker goes on with the rest."""
    import ingest.route
    from ftel.storage.points import to_points as real

    def faulty(message):  # type: ignore[no-untyped-def]
        if message.seq == 2:
            raise RuntimeError("a bug that only this message finds")
        return real(message)

    monkeypatch.setattr(ingest.route, "to_points", faulty)
    worker, transport, writer, stop = rig
    transport.send(message(1), message(2), message(3))
    wait_until(lambda: len(transport.entries("ack")) == 3, timeout_s=5, what="three acks", every_s=0.01)
    (letter,) = _dead_letters(transport)
    assert letter["stage"] == "route"
    assert letter["error_type"] == "RuntimeError"
    assert "a bug that only this message finds" in str(letter["reason"])
    assert _confirmed(transport) == [1, 3]
    assert sum(1 for line in writer.lines() if line.startswith("machine_state,")) == 2
    assert any(line.startswith("dead_letter,") and 'stage="route"' in line for line in writer.lines())
    assert not stop.is_set()
    assert worker.stats.messages_in == 3


@pytest.mark.logs_exceptions
def test_a_machinery_failure_stops_the_worker_without_acknowledging_what_is_not_stored(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An error that is not one message's (here: publishing a confirmation fails for a reason of the worker's
    own) passes the boundary: the worker stops, and what it held is not acknowledged."""
    transport, writer = FakeTransport(), FakeWriter()
    ingest_settings = IngestSettings(worker_id="w-1", flush_interval_s=0.01, health_interval_s=3600)
    worker = IngestWorker(Settings(ingest=ingest_settings), transport=transport, writer=writer)
    transport.on_message = worker._on_message

    def broken_publish(topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        raise OSError("the worker's own socket is gone")

    monkeypatch.setattr(transport, "publish", broken_publish)
    transport.send(message(1), message(2))
    with pytest.raises(OSError, match="socket is gone"):
        worker.run(threading.Event())
    assert transport.entries("ack") == []
