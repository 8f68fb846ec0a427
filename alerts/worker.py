"""The alert worker (I/O shell): MQTT in, engine, durable commit, MQTT ack, deliveries out.

* Its own shared-subscription group on the data topics (``$share/<group>/ftel/v1/<site>/+/+/+/+``), a
  persistent session (clean start off, Session Expiry Interval) and manual acknowledgement: a message is
  acknowledged only after the engine state it produced and the outbox rows of the alerts it caused are
  committed (and, for a message dead-lettered, after the broker acknowledged its dead letter), so a SIGKILL
  loses nothing (the broker redelivers) and repeats nothing (replays recompute the same alert ids; the outbox
  keeps one row per (sink, event)).
* Commits come on a timer: ``flush_interval_s`` after the first message not yet committed, or as soon as
  ``flush_max_messages`` are waiting; each writes only the rows of the machines, gateways and alerts that
  changed (alerts/rows.py), so its cost follows the messages, not the fleet. The worker stops reading while
  ``max_unacked`` messages wait for a commit (Mosquitto does not honour Receive Maximum); messages that only
  wait for their dead letter's PUBACK do not count, since reading the socket is what brings that PUBACK.
* A gateway's last will is judged here for alerts (gateway_offline, its machines' alerts held), but its
  machines' OFFLINE points are ingest's (ingest/deaths.py): boards show them whether this worker runs or not.
* Retained machine meta and gateway status come through a plain subscription as well: a shared subscription
  receives no retained messages.
* Without a local snapshot (a new host) the worker first rebuilds its open alerts from the retained alert
  topics ``ftel/v1/alerts/<alert id>``.
* Deliveries drain the outbox, each sink on its own: the retained alert topic from the consumer (an outbox row
  is delivered once the broker's PUBACK came), InfluxDB and each webhook in a thread of their own, each with its
  own timeout and backoff, so a slow or dead receiver never holds up evaluation.

Threads, and why: the consumer drives the MQTT connection itself (ftel/mqtt_transport.py, as the ingest worker
does) in the thread that calls ``run``: a blocking loop of ``poll`` is what lets it stop reading, and it needs
no event loop. The deliveries that wait on other machines (InfluxDB, webhooks) get a thread each, so that none
holds up the consumer or another sink. They share the sqlite store, which serialises every call with a lock
(alerts/store.py); that is simpler than an asyncio loop pumping the transport, and each thread stays
straight-line code.

Its ports are parameters (``transport``, ``store``, the InfluxDB writer, the webhook poster): the real
ones are built by default, fakes unit-test the logic (tests/unit/test_alerts_worker.py), and the integration
tests prove the same on the real broker, database and receivers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from alerts.delivery import (
    INFLUX_SINK,
    MQTT_SINK,
    alert_point,
    post_webhook,
    record_json,
    webhook_body,
    webhook_client,
    webhook_sink,
)
from alerts.engine import Engine, read_filters
from alerts.errors import DeliveryError
from alerts.lifecycle import AlertRecord
from alerts.rows import changed_rows, state_from_rows
from alerts.rules import AlertConfig, WebhookTarget
from alerts.store import OutboxItem, Store
from ftel.boundary import DeadLetter, Fault, Stage, contain, dead_letter_body
from ftel.contract import ContractError, Refused, data_filter, parse_json, read_message, shared
from ftel.contract.topics import (
    ACK_TOPIC,
    GatewayKind,
    MachineKind,
    alert_topic,
    alerts_filter,
    dead_letter_topic,
    gateway_kind_filter,
    is_alert_topic,
    machine_kind_filter,
)
from ftel.mqtt_transport import MqttTransport, PahoTransport, Publication, TransportError
from ftel.ready import announce_ready
from ftel.retry import RetryPolicy
from ftel.settings import Settings
from ftel.storage.lineproto import encode_batch
from ftel.storage.writer import LineWriter, WriteError, make_writer

log = logging.getLogger(__name__)

STORE_FILE = "alerts.sqlite"
# How many outbox rows one MQTT or InfluxDB delivery round takes.
DELIVERY_BATCH = 200
# Idle deliverers look at the outbox at least this often (a commit wakes them at once).
IDLE_POLL_S = 1.0
# Delivered outbox rows are kept this long (a replay after a restart finds them and does not send again).
KEEP_DELIVERED_S = 7 * 24 * 3600.0
# Older delivered rows are looked for this often (and when the worker starts).
PURGE_EVERY_S = 3600.0
# A dead letter keeps this much of the payload it is about (as ingest's do by default).
DEAD_LETTER_KEEP_BYTES = 2048
# One turn of the consumer: how long a poll waits for the socket.
POLL_S = 0.05
SUBSCRIBE_TIMEOUT_S = 15.0  # for the broker's answer, while the worker is free to read
# A clean stop waits this long for the broker to acknowledge what it was last given (dead letters, alerts).
STOP_WAIT_S = 5.0
# A delivery thread asked to stop may be in the middle of one attempt (a webhook's timeout): this long more.
DELIVERY_JOIN_S = 5.0

WebhookPost = Callable[[WebhookTarget, str], None]


@dataclass(frozen=True, slots=True)
class AckCommand:
    alert_id: str
    by: str

    @classmethod
    def parse(cls, payload: bytes) -> AckCommand:
        data = parse_json(payload)
        if not isinstance(data, dict) or not isinstance(data.get("alert_id"), str):
            raise ContractError('invalid ack command: {"alert_id": "<id>", "by": "<who>"} is expected')
        return cls(alert_id=data["alert_id"], by=str(data.get("by") or "unknown")[:200])

    def encode(self) -> bytes:
        return json.dumps({"alert_id": self.alert_id, "by": self.by}).encode()


@dataclass
class _Pending:
    """What the next commit covers: the transitions, the MQTT acknowledgements waiting for it and the dead
    letters those wait for too, and since when (monotonic) the first of them waits."""

    records: list[AlertRecord] = field(default_factory=list)
    acks: list[int] = field(default_factory=list)
    letters: list[Publication] = field(default_factory=list)
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class _Release:
    """Committed messages, acknowledged once the broker has acknowledged their dead letters."""

    acks: list[int]
    letters: list[Publication]


class AlertWorker:
    def __init__(
        self,
        settings: Settings,
        config: AlertConfig,
        *,
        site: str | None = None,
        transport: MqttTransport | None = None,
        store: Store | None = None,
        alert_writer: LineWriter | None = None,
        post: WebhookPost | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.options = o = config.worker
        self.site = site or settings.site
        self.store = store or Store(Path(o.state_dir) / STORE_FILE)
        head = self.store.snapshot()
        rows = self.store.rows() if head is not None else []
        self.engine = Engine(config, None if head is None else state_from_rows(head, rows))
        if head is not None and not rows:
            self.engine.mark_all_changed()  # a store from before rows per subject: write them all, once
        self._rebuild = head is None
        self._transport: MqttTransport = transport or PahoTransport(
            settings.mqtt,
            client_id=self.client_id,
            session_expiry_s=o.session_expiry_s,
            receive_maximum=o.max_unacked,
        )
        self._transport.on_message = self._on_message
        self._alert_writer = alert_writer or make_writer(settings.influx)
        self._webhooks = webhook_client()
        self._post: WebhookPost = post or (lambda target, body: post_webhook(target, body, client=self._webhooks))
        self._pending = _Pending()
        self._releases: deque[_Release] = deque()
        # Outbox rows of the MQTT sink published on this connection, waiting for the broker's PUBACK.
        self._in_flight: list[tuple[OutboxItem, Publication]] = []
        self._mqtt_due = True  # look at the MQTT sink's outbox at the next turn
        self._mqtt_looked = 0.0
        # While rebuilding: the retained alerts found, and data messages that came meanwhile (handled after).
        self._found: list[AlertRecord] | None = None
        self._early: list[tuple[str, bytes, int, int]] = []
        self._last_found = 0.0
        self._draining = False
        self._failures = 0  # connections lost or refused in a row
        self._purged_at: float | None = None
        self.sinks = [MQTT_SINK, INFLUX_SINK, *(webhook_sink(t) for t in config.webhooks)]
        self._wake = {sink: threading.Event() for sink in self.sinks}
        self._stopping = threading.Event()
        self._broken: BaseException | None = None  # a delivery thread's own machinery failed
        # Counters written by the consumer thread only (delivery threads touch the store, never these).
        self.messages_seen = 0
        self.dead_letters = 0
        # Ingest's limits: a message stamped far off would move the engine's clock (and fire every timer).
        self._limits = settings.ingest.time_limits()
        # Set once the worker's subscriptions are granted (its persistent session holds them from then on).
        self.subscribed = threading.Event()

    @property
    def client_id(self) -> str:
        """The session's id. A broker that takes the username as the client id (ftel's does) binds the
        session to the identity instead: one worker per identity."""
        return self.options.client_id or self.settings.mqtt.username or f"ftel-alerts-{self.options.group}"

    # -- main --------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume, commit and deliver until ``stop``; reconnect whenever the broker goes away."""
        deliverers = [
            self._deliverer(INFLUX_SINK, self._write_alerts, DELIVERY_BATCH, self._influx_policy()),
            *(
                self._deliverer(webhook_sink(t), self._webhook_sender(t), 1, _webhook_policy(t))
                for t in self.config.webhooks
            ),
        ]
        for thread in deliverers:
            thread.start()
        o = self.options
        reconnect = RetryPolicy(o.reconnect_s, max(o.reconnect_s, o.reconnect_max_s))
        try:
            while not stop.is_set():
                try:
                    self._session(stop)
                except TransportError as error:
                    self._lost()
                    if stop.is_set():
                        break
                    delay = reconnect.delay(self._failures)
                    self._failures += 1
                    log.warning("alert worker lost the broker (%s); reconnecting in %.1f s", error, delay)
                    stop.wait(delay)
        except Exception:
            log.critical(
                "alert worker %s stops: its own machinery failed. Nothing it had not committed was acknowledged; "
                "the broker keeps it for the worker's next start. The error follows.",
                self.client_id,
                exc_info=True,
            )
            raise
        finally:
            self._stopping.set()
            for event in self._wake.values():
                event.set()
            for thread in deliverers:
                thread.join(DELIVERY_JOIN_S + max((t.timeout_s for t in self.config.webhooks), default=0.0))
            self._transport.close()
            stuck = [thread.name for thread in deliverers if thread.is_alive()]
            if stuck:
                # Still in an attempt: what it delivers is marked when it ends, so its store and client stay open
                # (the process's end closes them); its row is delivered again at the next start at worst.
                log.warning("alert worker %s stops with deliveries still under way: %s", self.client_id, stuck)
            else:
                self._webhooks.close()
                self._alert_writer.close()
                self.store.close()

    def _session(self, stop: threading.Event) -> None:
        transport = self._transport
        session_present = transport.connect()
        self._failures = 0  # the broker answered: the next loss starts the backoff afresh
        mqtt = self.settings.mqtt
        log.info(
            "alert worker %s connected to %s:%s (session %s)",
            self.client_id,
            mqtt.host,
            mqtt.port,
            "resumed" if session_present else "new",
        )
        try:
            if self._rebuild:
                self._rebuild_from_retained(stop)
            if session_present:
                # A session from before the worker read only what its rules read still holds the whole stream's
                # subscription, which would hand it every sample twice.
                transport.unsubscribe(shared(self.options.group, data_filter(self.site)))
            for topic_filter in self._filters():
                transport.subscribe(topic_filter)
            answered_by = time.monotonic() + SUBSCRIBE_TIMEOUT_S
            while not stop.is_set():
                if self._broken is not None:
                    raise self._broken
                read = self._unacked() < self.options.max_unacked
                transport.poll(POLL_S, read=read)
                if answered_by:
                    if transport.subscribed():
                        answered_by = 0.0
                        self._ready()
                    elif not read:  # the answer waits behind what we hold back, not on the broker
                        answered_by = time.monotonic() + SUBSCRIBE_TIMEOUT_S
                    elif time.monotonic() > answered_by:
                        raise TransportError("no answer to the alert worker's subscriptions")
                self._turn()
            self._drain()
        finally:
            transport.disconnect()

    def _filters(self) -> list[str]:
        return [
            *(shared(self.options.group, topic_filter) for topic_filter in read_filters(self.site)),
            # Retained meta and status (a shared subscription gets no retained messages).
            machine_kind_filter(self.site, MachineKind.META),
            gateway_kind_filter(self.site, GatewayKind.STATUS),
            ACK_TOPIC,
        ]

    def _ready(self) -> None:
        log.info("alert worker %s subscribed (group %s, site %s)", self.client_id, self.options.group, self.site)
        self.subscribed.set()
        announce_ready(self.settings.ready_file, self.client_id)

    def _turn(self) -> None:
        """After each poll: commit when due, acknowledge what may be, deliver to the MQTT sink."""
        p = self._pending
        if p.acks or p.records:
            due = len(p.acks) >= self.options.flush_max_messages
            if due or time.monotonic() - p.since >= self.options.flush_interval_s:
                self._flush()
        self._release()
        self._deliver_mqtt()

    def _unacked(self) -> int:
        """Messages that wait for a commit (or, while rebuilding, for the rebuild to end)."""
        return len(self._pending.acks) + len(self._early)

    def _lost(self) -> None:
        """The connection is gone: what it delivered is handed out again by the broker, so nothing of it is
        acknowledged; what the engine made of it is committed (a redelivery recomputes the same alerts, which
        the outbox keeps once) and what was published and not acknowledged by the broker is sent again."""
        self._pending.acks.clear()
        self._pending.letters.clear()
        self._releases.clear()
        self._in_flight.clear()
        if not self._rebuild and self._found is None:  # (before a rebuild ends, nothing: the next one does it all)
            self._flush()
        self._mqtt_due = True
        self._found = None
        self._early.clear()

    def _drain(self) -> None:
        """A clean stop commits what it holds and gives the broker a moment to acknowledge what it was given."""
        if self._rebuild:
            return  # stopped before the rebuild ended: a commit now would make the next start skip it
        self._flush()
        self._draining = True  # reading brings the PUBACKs; messages that come meanwhile are left to the broker
        try:
            deadline = time.monotonic() + STOP_WAIT_S
            while (self._releases or self._in_flight) and time.monotonic() < deadline:
                self._transport.poll(POLL_S, read=True)
                self._release()
                self._deliver_mqtt(publish=False)
        finally:
            self._draining = False

    # -- receiving ---------------------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        if self._draining:
            return  # not acknowledged: the broker hands it out again to the next session
        if self._found is not None and not is_alert_topic(topic):
            self._early.append((topic, payload, mid, qos))  # handled once the rebuild is done
            return
        if self._found is not None:
            self._take_retained_alert(topic, payload)
        else:
            letter = self._handle(topic, payload)
            if letter is not None:  # published now; the message is acknowledged once the broker has it
                self._pending.letters.append(self._dead_letter(letter))
        if qos > 0:
            p = self._pending
            p.acks.append(mid)
            if len(p.acks) == 1:
                p.since = time.monotonic()

    def _rebuild_from_retained(self, stop: threading.Event) -> None:
        """Adopt the alerts the retained alert topics know (a worker that lost or never had local state)."""
        transport, topic = self._transport, alerts_filter()
        self._found, self._early = [], []
        transport.subscribe(topic)
        started = time.monotonic()
        deadline = started + self.options.rebuild_max_s
        answered = 0.0
        while not stop.is_set() and time.monotonic() < deadline:
            transport.poll(POLL_S, read=len(self._early) < self.options.max_unacked)
            if not answered and transport.subscribed():
                answered = time.monotonic()
            quiet_since = max(answered, self._last_found)
            if answered and time.monotonic() - quiet_since >= self.options.rebuild_quiet_s:
                break
        transport.unsubscribe(topic)
        found, early = self._found, self._early
        self._found, self._early = None, []
        if stop.is_set():
            return  # cut short: nothing adopted nor acknowledged, the next start rebuilds it all
        restored = self.engine.restore(r for r in found if self.site in ("+", r.site))
        log.info("rebuilt %d alerts from retained alert topics", restored)
        self._rebuild = False
        self._flush()
        for message in early:
            self._on_message(*message)

    def _take_retained_alert(self, topic: str, payload: bytes) -> None:
        assert self._found is not None
        self._last_found = time.monotonic()
        if not payload:
            return
        try:
            self._found.append(AlertRecord.model_validate_json(payload))
        except ValidationError as error:
            log.warning("ignoring unreadable retained alert on %s: %s", topic, error)

    def _handle(self, topic: str, payload: bytes) -> DeadLetter | None:
        """One message in, inside its boundary (ftel/boundary.py): a message the worker cannot use, or that its
        engine fails on, comes back as a dead letter with the stage and the reason, and the stream goes on.

        An engine that raised may have changed part of its state for that message before it did; what it
        changed is committed with the rest (the alternative, a copy of the state per message, costs more than
        a county's stream allows), and the dead letter says which message it was."""
        self.messages_seen += 1
        received = int(time.time() * 1000)
        judged = contain(lambda stage: self._observe(stage, topic, payload), first_stage="parse", what=topic)
        if isinstance(judged, Fault):
            return DeadLetter(topic, payload, judged.reason, received, judged.stage, judged.error_type)
        if isinstance(judged, Refused):
            return DeadLetter(topic, payload, judged.reason, received, judged.stage, "ContractError")
        return None

    def _observe(self, stage: Stage, topic: str, payload: bytes) -> Refused | None:
        if topic == ACK_TOPIC:
            try:
                command = AckCommand.parse(payload)
            except ContractError as error:
                return Refused(str(error), None, "parse")
            stage.at = "engine"
            acked = self.engine.acknowledge(command.alert_id, by=command.by)
            if acked is None:
                log.warning("ack for %s ignored: no such firing alert", command.alert_id[:100])
            else:
                self._pending.records.append(acked)
            return None
        if is_alert_topic(topic):
            return None  # left over from a rebuild subscription
        judged = read_message(topic, payload)
        if isinstance(judged, Refused):
            return judged
        refused = self._limits.refusal(judged.message, judged.sender, received_ms=int(time.time() * 1000))
        if refused is not None:
            return refused
        stage.at = "engine"
        self._pending.records.extend(self.engine.observe(judged.message))
        return None

    def _dead_letter(self, letter: DeadLetter) -> Publication:
        self.dead_letters += 1
        log.warning("dead letter from %s (%s): %s", letter.topic[:200], letter.stage, letter.reason[:500])
        body = dead_letter_body(worker=self.client_id, letter=letter, keep_bytes=DEAD_LETTER_KEEP_BYTES)
        return self._transport.publish(dead_letter_topic(self.client_id), body)

    # -- committing ----------------------------------------------------------------------------------------

    def _flush(self) -> None:
        p, self._pending = self._pending, _Pending()
        items: list[tuple[str, str, str]] = []
        for record in p.records:
            log.info("alert %s %s: %s", record.alert_id, record.status.value, record.summary)
            body = record_json(record)
            items.append((MQTT_SINK, record.event_id, body))
            items.append((INFLUX_SINK, record.event_id, body))
            items.extend((webhook_sink(t), record.event_id, webhook_body(record)) for t in self.config.webhooks)
        rows = changed_rows(self.engine.state, self.engine.take_changes())
        self.store.commit(rows.head, items, upserts=rows.upserts, deletes=rows.deletes)
        # Only now may the broker forget them (and the dead-lettered once it has their dead letters).
        if p.acks:
            self._releases.append(_Release(p.acks, p.letters))
        self._release()
        if items:
            self._mqtt_due = True
            for event in self._wake.values():
                event.set()
        now = time.monotonic()
        if self._purged_at is None or now - self._purged_at >= PURGE_EVERY_S:
            self._purged_at = now
            purged = self.store.purge_delivered(KEEP_DELIVERED_S)
            if purged:
                log.info("purged %d outbox rows delivered more than %.0f h ago", purged, KEEP_DELIVERED_S / 3600)

    def _release(self) -> None:
        while self._releases and all(letter.is_published() for letter in self._releases[0].letters):
            for mid in self._releases.popleft().acks:
                self._transport.ack(mid)

    # -- deliveries ----------------------------------------------------------------------------------------

    def _deliver_mqtt(self, *, publish: bool = True) -> None:
        """The retained alert topics, in outbox order; a row is delivered once the broker acknowledged it and
        every row before it. New rows leave without waiting for the PUBACKs of those before them (up to
        DELIVERY_BATCH in flight): while the worker reads a backlog, the broker answers behind it, and at 60,000
        machines alerts that waited for the batch before them reached the alert topics a minute late."""
        answered = 0
        while answered < len(self._in_flight) and self._in_flight[answered][1].is_published():
            answered += 1
        if answered:
            # Rows left behind by a full window are looked at again now that it has room; new rows set _mqtt_due
            # themselves (at their commit), so a PUBACK alone asks the store nothing.
            self._mqtt_due |= len(self._in_flight) >= DELIVERY_BATCH
            self.store.delivered([item for item, _ in self._in_flight[:answered]])
            del self._in_flight[:answered]
        now = time.monotonic()
        if not publish or not (self._mqtt_due or now - self._mqtt_looked >= IDLE_POLL_S):
            return
        self._mqtt_due, self._mqtt_looked = False, now
        sent = self._in_flight[-1][0].seq if self._in_flight else None
        for item in self.store.due(MQTT_SINK, limit=DELIVERY_BATCH):
            if len(self._in_flight) >= DELIVERY_BATCH:
                break
            if sent is not None and item.seq <= sent:
                continue  # in flight already
            record = AlertRecord.model_validate_json(item.body)
            publication = self._transport.publish(alert_topic(record.alert_id), item.body.encode(), retain=True)
            self._in_flight.append((item, publication))

    def _deliverer(
        self, sink: str, send: Callable[[list[OutboxItem]], None], batch: int, policy: RetryPolicy
    ) -> threading.Thread:
        return threading.Thread(
            target=self._deliver_loop, args=(sink, send, batch, policy), name=f"alerts-{sink}", daemon=True
        )

    def _deliver_loop(
        self, sink: str, send: Callable[[list[OutboxItem]], None], batch: int, policy: RetryPolicy
    ) -> None:
        """Drain one sink of the outbox, in order, with backoff; its failures wait in the outbox, not in the
        consumer."""
        try:
            while not self._stopping.is_set():
                items = self.store.due(sink, limit=batch)
                if not items:
                    self._idle(sink)
                    continue
                try:
                    send(items)
                except (WriteError, DeliveryError) as error:
                    delay = policy.delay(items[0].attempts, retry_after_s=error.retry_after_s)
                    log.warning("%s: %s (attempt %d); retrying in %.1f s", sink, error, items[0].attempts + 1, delay)
                    self.store.failed(items[0], retry_in_s=delay, error=str(error))
                    self._idle(sink)
                else:
                    self.store.delivered(items)
        except Exception as error:
            # Not the receiver's fault (that waits in the outbox): the worker's own; the consumer stops on it.
            log.critical("the %s delivery of alert worker %s failed", sink, self.client_id, exc_info=True)
            self._broken = error

    def _idle(self, sink: str) -> None:
        wake = self._wake[sink]
        timeout = IDLE_POLL_S
        next_try = self.store.next_retry(sink)
        if next_try is not None:
            timeout = min(timeout, max(0.01, next_try - time.time()))
        wake.wait(timeout)
        wake.clear()

    def _influx_policy(self) -> RetryPolicy:
        return RetryPolicy(self.options.influx_retry_initial_s, self.options.influx_retry_max_s)

    def _write_alerts(self, items: list[OutboxItem]) -> None:
        self._alert_writer.write(encode_batch([alert_point(AlertRecord.model_validate_json(i.body)) for i in items]))

    def _webhook_sender(self, target: WebhookTarget) -> Callable[[list[OutboxItem]], None]:
        def send(items: list[OutboxItem]) -> None:
            for item in items:
                self._post(target, item.body)

        return send


def _webhook_policy(target: WebhookTarget) -> RetryPolicy:
    return RetryPolicy(target.retry_initial_s, target.retry_max_s, target.retry_exponential_base)


class WorkerThread:
    """Runs an AlertWorker in a thread (tests, all-in-one runs)."""

    def __init__(self, worker: AlertWorker) -> None:
        self.worker = worker
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="alert-worker", daemon=True)

    def _main(self) -> None:
        try:
            self.worker.run(self._stop)
        except BaseException as error:
            self._error = error

    def start(self) -> WorkerThread:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        if self._error is not None:
            raise self._error
