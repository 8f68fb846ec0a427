"""The alert worker (I/O shell): MQTT in, engine, durable commit, MQTT ack, deliveries out.

* Its own shared-subscription group on the data topics (``$share/<group>/ftel/v1/<site>/+/+/+/+``), a
  persistent session (clean start off, Session Expiry Interval) and manual acknowledgement: a message is
  acknowledged only after the engine state it produced and the outbox rows of the alerts it caused are
  committed, so a SIGKILL loses nothing (the broker redelivers) and repeats nothing (replays recompute the
  same alert ids; the outbox keeps one row per (sink, event)).
* Commits come on a timer: ``flush_interval_s`` after the first message not yet committed, or as soon as
  ``flush_max_messages`` are waiting; each writes only the rows of the machines, gateways and alerts that
  changed (alerts/rows.py), so its cost follows the messages, not the fleet.
* The deaths the engine decides (a gateway's last will) go through the outbox too: the gateway's status and
  its machines OFFLINE, in InfluxDB, stamped at the gateway's last message (ftel.storage.points.death_points),
  once per death.
* Retained machine meta and gateway status come through a plain subscription as well: a shared subscription
  receives no retained messages.
* Without a local snapshot (a new host) the worker first rebuilds its open alerts from the retained alert
  topics ``ftel/v1/alerts/<alert id>``.
* Deliveries drain the outbox in their own tasks (MQTT retained topic, InfluxDB, each webhook), each with
  its own timeout and backoff, so a slow or dead receiver never holds up evaluation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from alerts.delivery import (
    DEATHS_SINK,
    INFLUX_SINK,
    MQTT_SINK,
    alert_point,
    death_event_id,
    death_lines,
    post_webhook,
    record_json,
    webhook_body,
    webhook_client,
    webhook_sink,
)
from alerts.engine import Engine
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
from ftel.mqtt import aiomqtt_options
from ftel.retry import RetryPolicy
from ftel.settings import Settings
from ftel.storage.lineproto import encode_batch
from ftel.storage.writer import WriteError, make_writer

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


def session_properties(expiry_s: int) -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = expiry_s
    return properties


@dataclass
class _Pending:
    """What the next commit covers: the transitions and the MQTT acknowledgements waiting for it, and since
    when (monotonic) the first of them waits."""

    records: list[AlertRecord] = field(default_factory=list)
    acks: list[tuple[int, int]] = field(default_factory=list)
    since: float = 0.0


class AlertWorker:
    def __init__(self, settings: Settings, config: AlertConfig, *, site: str | None = None) -> None:
        self.settings = settings
        self.config = config
        self.options = config.worker
        self.site = site or settings.site
        self.store = Store(Path(self.options.state_dir) / STORE_FILE)
        head = self.store.snapshot()
        rows = self.store.rows() if head is not None else []
        self.engine = Engine(config, None if head is None else state_from_rows(head, rows))
        if head is not None and not rows:
            self.engine.mark_all_changed()  # a store from before rows per subject: write them all, once
        self._rebuild = head is None
        self._pending = _Pending()
        self._waiting: asyncio.Event | None = None  # set while messages wait for a commit
        self._purged_at: float | None = None
        self.sinks = [MQTT_SINK, INFLUX_SINK, DEATHS_SINK, *(webhook_sink(t) for t in config.webhooks)]
        self._wake: dict[str, asyncio.Event] = {}
        self.messages_seen = 0
        self.dead_letters = 0
        # Ingest's limits: a message stamped far off would move the engine's clock (and fire every timer).
        self._limits = settings.ingest.time_limits()
        self._webhooks = webhook_client()
        # Set once the worker's subscriptions are in place (its persistent session holds them from then on).
        self.subscribed = threading.Event()

    @property
    def client_id(self) -> str:
        """The session's id. A broker that takes the username as the client id (ftel's does) binds the
        session to the identity instead: one worker per identity."""
        return self.options.client_id or self.settings.mqtt.username or f"ftel-alerts-{self.options.group}"

    # -- main --------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._wake = {sink: asyncio.Event() for sink in self.sinks}
        self._waiting = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._mqtt_loop(stop))
                tasks.create_task(self._influx_loop(INFLUX_SINK, _alert_lines, stop))
                tasks.create_task(self._influx_loop(DEATHS_SINK, _death_lines, stop))
                for target in self.config.webhooks:
                    tasks.create_task(self._webhook_loop(target, stop))
        finally:
            self._webhooks.close()
            self.store.close()

    async def _mqtt_loop(self, stop: asyncio.Event) -> None:
        mqtt = self.settings.mqtt
        while not stop.is_set():
            client = aiomqtt.Client(
                **aiomqtt_options(mqtt),
                identifier=self.client_id,
                clean_start=False,
                properties=session_properties(self.options.session_expiry_s),
            )
            # Acknowledge only after the commit (see the module docstring). aiomqtt has no switch for it;
            # paho's own is set on the client it wraps.
            client._client.manual_ack_set(True)
            try:
                async with client:
                    log.info("alert worker %s connected to %s:%s", self.client_id, mqtt.host, mqtt.port)
                    if self._rebuild:
                        await self._rebuild_from_retained(client)
                    await self._subscribe(client)
                    await _until_stopped(
                        stop, self._consume(client), self._commit_timer(client), self._publish_loop(client, stop)
                    )
                    self._flush(client)
            except aiomqtt.MqttError as error:
                self._pending = _Pending()  # unacknowledged: the broker redelivers them
                log.warning("alert worker lost the broker (%s); reconnecting", error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.options.reconnect_s)

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        site_filter = data_filter(self.site)
        await client.subscribe(shared(self.options.group, site_filter), qos=1)
        # Retained meta and status (a shared subscription gets no retained messages).
        await client.subscribe(machine_kind_filter(self.site, MachineKind.META), qos=1)
        await client.subscribe(gateway_kind_filter(self.site, GatewayKind.STATUS), qos=1)
        await client.subscribe(ACK_TOPIC, qos=1)
        log.info("alert worker %s subscribed (group %s, site %s)", self.client_id, self.options.group, self.site)
        self.subscribed.set()

    async def _rebuild_from_retained(self, client: aiomqtt.Client) -> None:
        """Adopt the alerts the retained alert topics know (a worker that lost or never had local state)."""
        topic = alerts_filter()
        await client.subscribe(topic, qos=1)
        found: list[AlertRecord] = []
        deadline = time.monotonic() + self.options.rebuild_max_s
        iterator = aiomqtt_messages(client)
        while time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(anext(iterator), self.options.rebuild_quiet_s)
            except TimeoutError:
                break
            self._pending.acks.append((message.mid, message.qos))
            if not is_alert_topic(str(message.topic)) or not message.payload:
                continue
            try:
                record = AlertRecord.model_validate_json(_payload(message))
            except ValidationError as error:
                log.warning("ignoring unreadable retained alert on %s: %s", message.topic, error)
                continue
            if self.site in ("+", record.site):
                found.append(record)
        await client.unsubscribe(topic)
        restored = self.engine.restore(found)
        log.info("rebuilt %d alerts from retained alert topics", restored)
        self._rebuild = False
        self._flush(client)

    async def _consume(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic, payload = str(message.topic), _payload(message)
            letter = self._handle(topic, payload)
            if letter is not None:  # dead-lettered before it is acknowledged (at the next commit)
                await self._dead_letter(client, letter)
            p = self._pending
            p.acks.append((message.mid, message.qos))
            if len(p.acks) == 1:
                p.since = time.monotonic()
                if self._waiting is not None:
                    self._waiting.set()
            if len(p.acks) >= self.options.flush_max_messages:
                self._flush(client)

    async def _commit_timer(self, client: aiomqtt.Client) -> None:
        """Commit ``flush_interval_s`` after the first message that waits for a commit (not whenever the
        receive queue is empty: at real time it nearly always is, and a commit per message cannot keep up)."""
        assert self._waiting is not None
        while True:
            await self._waiting.wait()
            left = self._pending.since + self.options.flush_interval_s - time.monotonic()
            if left > 0:
                await asyncio.sleep(left)
                continue  # committed meanwhile (flush_max_messages), or now due
            self._flush(client)

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

    async def _dead_letter(self, client: aiomqtt.Client, letter: DeadLetter) -> None:
        self.dead_letters += 1
        log.warning("dead letter from %s (%s): %s", letter.topic[:200], letter.stage, letter.reason[:500])
        body = dead_letter_body(worker=self.client_id, letter=letter, keep_bytes=DEAD_LETTER_KEEP_BYTES)
        await client.publish(dead_letter_topic(self.client_id), body, qos=1)

    def _flush(self, client: aiomqtt.Client) -> None:
        p, self._pending = self._pending, _Pending()
        if self._waiting is not None:
            self._waiting.clear()
        items: list[tuple[str, str, str]] = []
        for record in p.records:
            log.info("alert %s %s: %s", record.alert_id, record.status.value, record.summary)
            body = record_json(record)
            items.append((MQTT_SINK, record.event_id, body))
            items.append((INFLUX_SINK, record.event_id, body))
            items.extend((webhook_sink(t), record.event_id, webhook_body(record)) for t in self.config.webhooks)
        for death, at_ms in self.engine.take_deaths():
            log.info(
                "gateway %s (%s) vanished: its machines are OFFLINE from its last message at %d",
                death.gateway_id,
                death.workshop,
                at_ms,
            )
            items.append((DEATHS_SINK, death_event_id(death, at_ms), death_lines(death, at_ms)))
        rows = changed_rows(self.engine.state, self.engine.take_changes())
        self.store.commit(rows.head, items, upserts=rows.upserts, deletes=rows.deletes)
        for mid, qos in p.acks:
            if qos > 0:
                client._client.ack(mid, qos)
        if items:
            for event in self._wake.values():
                event.set()
        now = time.monotonic()
        if self._purged_at is None or now - self._purged_at >= PURGE_EVERY_S:
            self._purged_at = now
            purged = self.store.purge_delivered(KEEP_DELIVERED_S)
            if purged:
                log.info("purged %d outbox rows delivered more than %.0f h ago", purged, KEEP_DELIVERED_S / 3600)

    # -- deliveries --------------------------------------------------------------------------------------

    async def _idle(self, sink: str, stop: asyncio.Event) -> None:
        wake = self._wake[sink]
        timeout = IDLE_POLL_S
        next_try = self.store.next_retry(sink)
        if next_try is not None:
            timeout = min(timeout, max(0.01, next_try - time.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_first(wake.wait(), stop.wait()), timeout)
        wake.clear()

    async def _publish_loop(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        while not stop.is_set():
            items = self.store.due(MQTT_SINK, limit=DELIVERY_BATCH)
            for item in items:
                record = AlertRecord.model_validate_json(item.body)
                await client.publish(alert_topic(record.alert_id), item.body, qos=1, retain=True)
            if items:
                self.store.delivered(items)
            else:
                await self._idle(MQTT_SINK, stop)

    async def _influx_loop(self, sink: str, lines: Callable[[list[OutboxItem]], bytes], stop: asyncio.Event) -> None:
        """Drain one InfluxDB sink of the outbox (alert transitions, or deaths), in order, with backoff."""
        writer = make_writer(self.settings.influx)
        o = self.options
        while not stop.is_set():
            items = self.store.due(sink, limit=DELIVERY_BATCH)
            if not items:
                await self._idle(sink, stop)
                continue
            try:
                await asyncio.to_thread(writer.write, lines(items))
            except WriteError as error:
                policy = RetryPolicy(o.influx_retry_initial_s, o.influx_retry_max_s)
                delay = policy.delay(items[0].attempts, retry_after_s=error.retry_after_s)
                log.warning("%s not written to InfluxDB (%s); retrying in %.1f s", sink, error, delay)
                self.store.failed(items[0], retry_in_s=delay, error=str(error))
                await self._idle(sink, stop)
            else:
                self.store.delivered(items)

    async def _webhook_loop(self, target: WebhookTarget, stop: asyncio.Event) -> None:
        sink = webhook_sink(target)
        while not stop.is_set():
            items = self.store.due(sink, limit=1)
            if not items:
                await self._idle(sink, stop)
                continue
            await self._send(target, items[0])

    async def _send(self, target: WebhookTarget, item: OutboxItem) -> None:
        try:
            await asyncio.to_thread(post_webhook, target, item.body, client=self._webhooks)
        except DeliveryError as error:
            policy = RetryPolicy(target.retry_initial_s, target.retry_max_s, target.retry_exponential_base)
            delay = policy.delay(item.attempts, retry_after_s=error.retry_after_s)
            log.warning("%s (attempt %d); retrying in %.1f s", error, item.attempts + 1, delay)
            self.store.failed(item, retry_in_s=delay, error=str(error))
        else:
            self.store.delivered([item])


def _alert_lines(items: list[OutboxItem]) -> bytes:
    return encode_batch([alert_point(AlertRecord.model_validate_json(i.body)) for i in items])


def _death_lines(items: list[OutboxItem]) -> bytes:
    return "\n".join(i.body for i in items).encode()


def aiomqtt_messages(client: aiomqtt.Client) -> aiomqtt.client.MessagesIterator:
    return client.messages


def _payload(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode()


async def _first(*waits: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _until_stopped(stop: asyncio.Event, *work: Awaitable[None]) -> None:
    """Run ``work`` until ``stop`` is set; an error in any of them (a lost broker) propagates."""
    tasks = [asyncio.ensure_future(w) for w in work]
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper:
                task.result()
    finally:
        for task in [*tasks, stopper]:
            task.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)


class WorkerThread:
    """Runs an AlertWorker on its own event loop in a thread (tests, all-in-one runs)."""

    def __init__(self, worker: AlertWorker) -> None:
        self.worker = worker
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="alert-worker", daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self.worker.run(self._stop)

        try:
            asyncio.run(main())
        except BaseException as error:
            self._error = error
            self._ready.set()

    def start(self) -> WorkerThread:
        self._thread.start()
        self._ready.wait()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None:
            stop = self._stop
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout_s)
        if self._error is not None:
            raise self._error

    def call(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the worker's loop (e.g. to read its state consistently)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn)
