"""The ingest worker (aiomqtt 2.x): shared subscription, persistent session, batches, ack after write.

Flow per message: route() → the pending batch (or a dead letter, which also rides in the batch as a point)
→ written by the writer task when the batch is full or old enough → only then PUBACK every message in it.
A message the broker handed us but we did not acknowledge is handed again after a crash or reconnect;
points are idempotent, so that never counts twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ftel.contract.topics import DEAD_LETTER_PREFIX, data_filter, shared
from ftel.settings import Settings
from ftel.storage.lineproto import Point, encode_point
from ftel.storage.points import dead_letter_point
from ftel.storage.schema import Measurement
from ftel.storage.writer import LineWriter, RetryPolicy, WriteError, make_writer, write_with_retry
from ingest.route import Accepted, TimeLimits, dead_letter_body, route

log = logging.getLogger(__name__)

RECONNECT_DELAY_S = 1.0
MQTT_RECEIVE_MAXIMUM_LIMIT = 65535


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class IngestStats:
    messages_in: int = 0
    points_written: int = 0
    batches: int = 0
    last_batch_size: int = 0
    max_batch_size: int = 0
    retries: int = 0
    dead_letters: int = 0
    lag_ms: int = 0

    def as_fields(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in self.__slots__}


@dataclass(slots=True)
class Batch:
    """Lines waiting to be written and the MQTT message ids to acknowledge once they are."""

    generation: int
    lines: list[str] = field(default_factory=list)
    mids: list[int] = field(default_factory=list)
    first_received: float = 0.0

    def add(self, lines: tuple[str, ...] | list[str], mid: int | None) -> None:
        if not self.lines and not self.mids:
            self.first_received = time.monotonic()
        self.lines.extend(lines)
        if mid is not None:
            self.mids.append(mid)

    def __len__(self) -> int:
        return len(self.lines)


def _enable_manual_ack(client: aiomqtt.Client) -> None:
    # aiomqtt 2.x has no public manual-ack API yet (aiomqtt issue #345); paho-mqtt 2.x, under it, does.
    # This and _ack are the only two places that reach into the paho client.
    client._client.manual_ack_set(True)


def _ack(client: aiomqtt.Client, mid: int) -> None:
    client._client.ack(mid, 1)


class IngestWorker:
    def __init__(self, settings: Settings, *, writer: LineWriter | None = None) -> None:
        self.settings = settings
        self.stats = IngestStats()
        self._ingest = settings.ingest
        self._writer = writer or make_writer(settings.influx)
        self._policy = RetryPolicy(
            self._ingest.retry_initial_s, self._ingest.retry_max_s, self._ingest.retry_exponential_base
        )
        self._limits = TimeLimits(self._ingest.max_future_skew_s * 1000, self._ingest.max_age_s * 1000)
        self._generation = 0
        self._batch = Batch(0)
        self._wake = asyncio.Event()

    def _connect_properties(self) -> Properties:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        # Without a session expiry an MQTT 5 session ends with the connection, and a restarted worker
        # would lose what arrived while it was away.
        properties.SessionExpiryInterval = self._ingest.session_expiry_s
        properties.ReceiveMaximum = min(MQTT_RECEIVE_MAXIMUM_LIMIT, self._ingest.receive_maximum)
        return properties

    def _client(self) -> aiomqtt.Client:
        mqtt = self.settings.mqtt
        client = aiomqtt.Client(
            mqtt.host,
            mqtt.port,
            identifier=self._ingest.worker_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=self._connect_properties(),
            keepalive=mqtt.keepalive_s,
            username=mqtt.username,
            password=mqtt.password.get_secret_value() if mqtt.password else None,
        )
        _enable_manual_ack(client)
        return client

    async def run(self, stop: asyncio.Event) -> None:
        """Receive and write until ``stop``; reconnect whenever the broker goes away."""
        health = asyncio.create_task(self._health_loop(stop))
        try:
            while not stop.is_set():
                try:
                    async with self._client() as client:
                        await self._session(client, stop)
                except aiomqtt.MqttError as error:
                    if stop.is_set():
                        break
                    log.warning("MQTT connection lost (%s); reconnecting in %.0f s", error, RECONNECT_DELAY_S)
                    await asyncio.sleep(RECONNECT_DELAY_S)
        finally:
            health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await health

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        # A new connection: whatever was pending and unacknowledged will be redelivered by the broker.
        self._generation += 1
        self._batch = Batch(self._generation)
        await client.subscribe(shared(self._ingest.group, data_filter()), qos=1)
        log.info("worker %s subscribed to %s", self._ingest.worker_id, shared(self._ingest.group, data_filter()))
        writer = asyncio.create_task(self._write_loop(client, stop))
        receiver = asyncio.create_task(self._receive(client))
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({writer, receiver, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception():
                    raise task.exception()  # type: ignore[misc]
            if stop.is_set():
                await self._flush(client)  # a clean stop writes and acknowledges what it holds
        finally:
            for task in (writer, receiver, stopper):
                task.cancel()
            for task in (writer, receiver, stopper):
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await task

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.stats.messages_in += 1
            received = wall_ms()
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            topic = message.topic.value
            outcome = route(topic, payload, received_ms=received, limits=self._limits)
            mid = message.mid if message.qos > 0 else None
            if isinstance(outcome, Accepted):
                self._batch.add(outcome.lines, mid)
            else:
                await self._dead_letter(client, topic, payload, reason=outcome.reason, received=received, mid=mid)
            if len(self._batch) >= self._ingest.batch_size:
                self._wake.set()

    async def _dead_letter(
        self, client: aiomqtt.Client, topic: str, payload: bytes, *, reason: str, received: int, mid: int | None
    ) -> None:
        self.stats.dead_letters += 1
        keep = self._ingest.dead_letter_text_bytes
        log.warning("dead letter from %s: %s", topic[:200], reason)
        await client.publish(
            f"{DEAD_LETTER_PREFIX}/{self._ingest.worker_id}",
            dead_letter_body(
                worker=self._ingest.worker_id,
                topic=topic,
                payload=payload,
                reason=reason,
                received_ms=received,
                keep_bytes=keep,
            ),
            qos=1,
        )
        point = dead_letter_point(
            worker=self._ingest.worker_id,
            slot=self.stats.dead_letters,
            topic=topic,
            payload=payload,
            reason=reason,
            received_ms=received,
            keep_bytes=keep,
        )
        self._batch.add([encode_point(point)], mid)

    async def _write_loop(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        interval = self._ingest.flush_interval_s
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()
            await self._flush(client)

    async def _flush(self, client: aiomqtt.Client) -> None:
        batch = self._batch
        if not batch.lines and not batch.mids:
            return
        self._batch = Batch(self._generation)
        await asyncio.to_thread(self._write_lines, batch.lines)
        if batch.generation != self._generation:
            return  # the connection that delivered these is gone; the broker will redeliver them
        for mid in batch.mids:
            _ack(client, mid)
        s = self.stats
        s.batches += 1
        s.points_written += len(batch.lines)
        s.last_batch_size = len(batch.lines)
        s.max_batch_size = max(s.max_batch_size, len(batch.lines))
        s.lag_ms = int((time.monotonic() - batch.first_received) * 1000)

    def _write_lines(self, lines: list[str]) -> None:
        """Write with retries; a batch InfluxDB refuses outright is split until the refused lines are found,
        and those become dead letters (the rest is written)."""
        if not lines:
            return
        try:
            write_with_retry(self._writer, "\n".join(lines).encode(), self._policy, on_retry=self._count_retry)
        except WriteError as error:
            if len(lines) == 1:
                self.stats.dead_letters += 1
                log.error("InfluxDB refused a point (%s): %s", error, lines[0][:300])  # noqa: TRY400 (a refusal, not a crash)
                return
            middle = len(lines) // 2
            self._write_lines(lines[:middle])
            self._write_lines(lines[middle:])

    def _count_retry(self, attempt: int, error: WriteError, delay: float) -> None:
        self.stats.retries += 1
        log.warning("write failed (%s); retry %d", error, attempt + 1)

    async def _health_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self._ingest.health_interval_s)
            point = Point(
                Measurement.INGEST_HEALTH,
                {"worker": self._ingest.worker_id},
                self.stats.as_fields(),
                wall_ms(),
            )
            self._batch.add([encode_point(point)], None)
