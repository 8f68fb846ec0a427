"""The ingest worker: shared subscription → route → batch → InfluxDB → confirm → acknowledge.

* The main thread drives the MQTT connection (ftel/mqtt_transport.py), routes each message into the filling
  batch and stops reading while ``max_unacked`` messages are unacknowledged, so memory stays bounded whatever
  the backlog. A writer thread stores one batch at a time; when it is stored the main thread publishes the
  confirmations (per gateway: these sequence numbers are stored), the dead letters, and only then acknowledges
  the messages to the broker.
* A refusal is never an acknowledgement. Lines InfluxDB refuses become dead letters with its reason. Anything
  blocking (credentials, a missing database, a body too large, or transient failures past
  ``retry_max_total_s``) stops the worker from taking more: it says so loudly (log and retained health topic),
  disconnects so the broker keeps the messages, tries the held batch again with backoff, and comes back by
  itself when InfluxDB takes it.
* A vanished gateway's death is written here (ingest/deaths.py): each batch carries what the worker stored of
  each gateway (``gateway_seen``); a last will waits ``death_settle_s``, then joins a batch, and the writer
  thread reads when the gateway was last seen, by any worker, and writes its machines OFFLINE from then; the
  will is acknowledged with that batch.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

from ftel.boundary import DeadLetter, Fault, Stage, contain, dead_letter_body
from ftel.contract.codec import Sender
from ftel.contract.models import GatewayStatus
from ftel.contract.topics import data_filter, dead_letter_topic, health_topic, shared
from ftel.histogram import BOUNDS_MS, Histogram
from ftel.mqtt_transport import MqttTransport, PahoTransport, Qos, TransportError
from ftel.ready import announce_ready
from ftel.retry import RetryPolicy
from ftel.settings import Settings
from ftel.storage.lineproto import Point, encode_point
from ftel.storage.points import dead_letter_point
from ftel.storage.query import QueryError
from ftel.storage.schema import Measurement, Tag
from ftel.storage.seen import InfluxSeen, Seen, SeenReader
from ftel.storage.writer import LineWriter, Refusal, WriteError, make_writer
from ingest.batch import Batch, confirmations
from ingest.deaths import Deaths, SeenTracker, death_at, death_lines, gateway_of, is_will
from ingest.route import Accepted, Rejected, route
from ingest.store import StoreOutcome, store_lines, write_policy

log = logging.getLogger(__name__)

POLL_S = 0.05
SUBSCRIBE_TIMEOUT_S = 15.0  # for the broker's answer, while the worker is free to read
BLOCKED_RETRY_INITIAL_S = 1.0
# Confirmations go at QoS 0. At QoS 1 each waits for a slot of paho's in-flight window, freed by the broker's
# PUBACK, which Mosquitto queues behind the whole backlog it is sending the worker: during a drain the gateways
# heard of what was stored only once the backlog was read, and the acknowledgements went out before the
# confirmations. QoS 1 bought nothing here: a gateway's session is clean (a confirmation for a gateway that is
# away is lost at either QoS), the worker's transport keeps no publication across a reconnect, and a confirmation
# lost is a resend of what it covered, stored again as the same points (docs/delivery.md).
CONFIRM_QOS: Qos = 0
# The retained health goes at QoS 0 too, for the same reason: at QoS 1 only paho's first 20 left the worker during a
# drain (100 s at one per 5 s), and the load test and `ftel run` showed a worker taking 0 messages a second while it
# drained. One lost is replaced by the next.
HEALTH_QOS: Qos = 0
# The last word (a clean stop's, or "blocked" before the worker lets go of its connection) goes at QoS 1: the
# transport's disconnect waits for its PUBACK, so once the worker has gone the broker has it, and whoever looks then
# (a supervisor, a test) reads it. At QoS 0 it was only written: a broker busy with other clients could take a later
# message from another connection first (CI: a watcher's marker overtook a stopped worker's last health).
LAST_WORD_QOS: Qos = 1
# Dead letters go at QoS 0 as well: each is stored in InfluxDB with its batch (where it is inspected), and the MQTT
# copy is its notice. At QoS 1 a flood of them during a drain waited in paho for in-flight slots (held in memory,
# without bound) until the backlog was read; at QoS 0 each is on the wire before its message's acknowledgement.
DEAD_LETTER_QOS: Qos = 0


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class IngestStats:
    """Counters with one writer thread each, so no update is lost (``+=`` is not atomic across threads): the
    main thread (the one that runs ``run``: receiving, releasing, blocking) writes every counter but
    ``retries``, which only the writer thread's ``_on_retry`` writes. Other threads only read them (health);
    dead letters refused by InfluxDB are counted by the main thread when it releases the batch. A new counter
    written from another thread needs a lock."""

    messages_in: int = 0
    points_written: int = 0
    batches: int = 0
    last_batch_size: int = 0
    max_batch_size: int = 0
    retries: int = 0
    dead_letters: int = 0
    confirmed: int = 0
    lag_ms: int = 0
    blocked: int = 0  # 1 while InfluxDB refuses
    deaths: int = 0  # last wills whose deaths were decided (written, or stale)

    def as_fields(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in self.__slots__}


@dataclass(slots=True)
class _Written:
    batch: Batch
    outcome: StoreOutcome | None = None
    error: WriteError | None = None
    dead_letters: list[DeadLetter] = field(default_factory=list)


class IngestWorker:
    def __init__(
        self,
        settings: Settings,
        *,
        transport: MqttTransport | None = None,
        writer: LineWriter | None = None,
        seen: SeenReader | None = None,
    ) -> None:
        self.settings = settings
        self.stats = IngestStats()
        self.latency = Histogram()
        self._ingest = i = settings.ingest
        self.worker_id = i.worker_id
        self._writer = writer or make_writer(settings.influx)
        self._seen = seen or InfluxSeen(settings.influx)
        self._tracker = SeenTracker()
        self._deaths = Deaths(i.death_settle_s)
        self._transport = transport or PahoTransport(
            settings.mqtt,
            client_id=i.worker_id,
            session_expiry_s=i.session_expiry_s,
            receive_maximum=i.receive_maximum,
            on_message=self._on_message,
        )
        self._policy = write_policy(i)
        # Reconnecting to a broker that went away: doubling with jitter between the settings' bounds.
        self._reconnect = RetryPolicy(settings.mqtt.reconnect_min_s, settings.mqtt.reconnect_max_s)
        self._limits = i.time_limits()
        self._generation = 0
        self._batch = Batch(0)
        self._writing: Batch | None = None
        self._to_write: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        self._written: queue.SimpleQueue[_Written] = queue.SimpleQueue()
        self._blocked: tuple[Batch, WriteError] | None = None
        self._blocked_since_ms = 0
        self._next_health = 0.0
        self.healths_published = 0  # (read by tests: how many the broker should have had by now)
        # Dead-letter points are made in the main thread and (for lines InfluxDB refuses) the writer thread: a
        # shared counter whose next() is atomic gives each its slot.
        self._slots = itertools.count(1)
        self._reconnects = 0  # failed connections in a row

    # -- receiving -----------------------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        """One message, inside its boundary (ftel/boundary.py): whatever it causes is dead-lettered with the
        stage and the error, and the worker goes on; it is acknowledged with the batch it joined, once that
        batch is stored."""
        self.stats.messages_in += 1
        received = wall_ms()
        ack = mid if qos > 0 else None
        taken = contain(lambda stage: self._take(stage, topic, payload, received, ack), first_stage="route", what=topic)
        if isinstance(taken, Fault):
            # Not confirmed: if its gateway really sent it, the gateway keeps its copy and sends it again later
            # (docs/delivery.md), so a worker without the fault stores it.
            letter = DeadLetter(topic, payload, taken.reason, received, taken.stage, taken.error_type)
            self._add_dead_letter(letter, mid=ack, sender=None)

    def _take(self, stage: Stage, topic: str, payload: bytes, received: int, ack: int | None) -> None:
        outcome = route(topic, payload, received_ms=received, limits=self._limits)
        stage.at = "batch"
        if isinstance(outcome, Accepted):
            message, mid = outcome.message, ack
            if is_will(message):
                # Acknowledged once its death is written (or found stale), not with its record.
                self._deaths.add(message, mid=ack, generation=self._generation, now=time.monotonic())
                mid = None
            else:
                self._tracker.note(message)
            self._batch.add(
                outcome.lines,
                mid=mid,
                topic=topic,
                payload=payload,
                received_ms=received,
                sender=outcome.sender,
                ts=outcome.ts,
            )
        else:
            stage.at = "dead letter"
            self._add_dead_letter(self._judged(topic, payload, outcome, received), mid=ack, sender=outcome.sender)

    @staticmethod
    def _judged(topic: str, payload: bytes, outcome: Rejected, received: int) -> DeadLetter:
        error_type = "LineProtocolError" if outcome.stage == "line" else "ContractError"
        return DeadLetter(topic, payload, outcome.reason, received, outcome.stage, error_type)

    def _add_dead_letter(self, letter: DeadLetter, *, mid: int | None, sender: Sender | None) -> None:
        self.stats.dead_letters += 1
        log.warning("dead letter from %s (%s): %s", letter.topic[:200], letter.stage, letter.reason[:500])
        self._batch.add_dead_letter(letter, self._dead_letter_line(letter), mid=mid, sender=sender)

    def _dead_letter_line(self, letter: DeadLetter) -> str:
        point = dead_letter_point(
            worker=self.worker_id,
            slot=next(self._slots),
            topic=letter.topic,
            payload=letter.payload,
            reason=letter.reason,
            stage=letter.stage,
            error_type=letter.error_type,
            received_ms=letter.received_ms,
            keep_bytes=self._ingest.dead_letter_text_bytes,
        )
        return encode_point(point)

    def _unacked(self) -> int:
        return self._batch.messages() + (self._writing.messages() if self._writing else 0)

    # -- writing (the writer thread) -----------------------------------------------------------------------

    def _writer_loop(self) -> None:
        while self._write_next():
            self._transport.wake()

    def _write_next(self) -> bool:
        """Store the next batch and hand it back; False at the end. Its own frame: a loop's variables would keep the
        last batch (every message it held) alive while the thread waits for the next, a third batch on top of
        the two that ``max_unacked`` bounds."""
        batch = self._to_write.get()
        if batch is None:
            return False
        result = _Written(batch)
        try:
            result.outcome = store_lines(self._writer, batch.lines, self._policy, on_retry=self._on_retry)
            result.dead_letters = self._refused_to_dead_letters(batch, result.outcome)
            self._write_deaths(batch)  # after the lines: this worker's own record of the gateway is stored
        except WriteError as error:
            result.error = error
        self._written.put(result)
        return True

    def _refused_to_dead_letters(self, batch: Batch, outcome: StoreOutcome) -> list[DeadLetter]:
        """Messages with a line InfluxDB refused become dead letters (stored as points here, in this thread)."""
        letters: dict[int, DeadLetter] = {}
        for index, reason in sorted(outcome.refused.items()):
            held = batch.owner_of(index)
            if held is not None and id(held) not in letters:
                letters[id(held)] = DeadLetter(
                    held.topic, held.payload, f"InfluxDB refused it: {reason}", held.received_ms, "write", "refused"
                )
        found = list(letters.values())
        if found:
            lines = [self._dead_letter_line(letter) for letter in found]
            more = store_lines(self._writer, lines, self._policy, on_retry=self._on_retry)
            if more.refused:
                log.error(
                    "InfluxDB refused %d dead-letter points too; they are on the dead-letter topic only",
                    len(more.refused),
                )
        return found

    def _write_deaths(self, batch: Batch) -> None:
        """Each will's death, decided from what every worker stored of its gateway since it was registered."""
        for will in batch.wills:
            seen = self._last_seen(will)
            lines = death_lines(will, seen)
            if not lines:
                log.info(
                    "gateway %s (%s/%s): a stale last will (a newer boot is stored)",
                    will.gateway_id,
                    will.site,
                    will.workshop,
                )
                continue
            outcome = store_lines(self._writer, lines, self._policy, on_retry=self._on_retry)
            if outcome.refused:
                log.error("InfluxDB refused the death of gateway %s: %s", will.gateway_id, outcome.refused)
            log.info(
                "gateway %s (%s/%s) vanished: its machines are OFFLINE from its last stored message at %s",
                will.gateway_id,
                will.site,
                will.workshop,
                death_at(will, seen),
            )

    def _last_seen(self, will: GatewayStatus) -> Seen | None:
        try:
            return self._seen.last_seen(gateway_of(will), since_ms=will.ts)
        except QueryError as error:
            if not error.unauthorized:
                raise WriteError(
                    f"cannot read when gateway {will.gateway_id} ({will.workshop}) was last seen: {error}",
                    refusal=Refusal.TRANSIENT,
                ) from error
        # Its InfluxDB user may only write: what this worker stored itself is all it knows (exact with one worker;
        # with several, the others' last messages are missed). Said, not blocking.
        log.warning(
            "worker %s may not read InfluxDB: gateway %s's death is dated by what this worker stored alone; grant "
            "its InfluxDB user READ so that it reads every worker's record (docs/delivery.md)",
            self.worker_id,
            will.gateway_id,
        )
        return self._tracker.seen(gateway_of(will))

    def _on_retry(self, attempt: int, error: WriteError, delay: float) -> None:
        self.stats.retries += 1  # the writer thread: the only writer of this counter (see IngestStats)
        log.warning("write failed (%s); retry %d in %.1f s", error, attempt + 1, delay)

    # -- releasing (main thread) ---------------------------------------------------------------------------

    def _maybe_flush(self, *, force: bool = False) -> None:
        batch = self._batch
        for pending in self._deaths.due(time.monotonic(), generation=self._generation):
            batch.add_death(pending.will, mid=pending.mid)
        if self._writing is not None or not (batch.lines or batch.mids or batch.wills):
            return
        due = len(batch) >= self._ingest.batch_size or time.monotonic() - batch.first_received >= (
            self._ingest.flush_interval_s
        )
        if force or due or batch.wills:
            for line in self._tracker.take_lines(worker=self.worker_id):
                batch.add_line(line)
            self._writing, self._batch = batch, Batch(self._generation)
            self._to_write.put(batch)

    def _release_written(self) -> None:
        while True:
            try:
                result = self._written.get_nowait()
            except queue.Empty:
                return
            self._writing = None
            if result.error is not None:
                self._block(result.batch, result.error)
                return
            self._release(result)

    def _release(self, result: _Written) -> None:
        batch, transport = result.batch, self._transport
        keep = self._ingest.dead_letter_text_bytes
        self.stats.dead_letters += len(result.dead_letters)  # refused by InfluxDB (made in the writer thread)
        for letter in result.dead_letters:
            log.warning("dead letter from %s (write): %s", letter.topic[:200], letter.reason[:500])
        for letter in [*batch.dead_letters, *result.dead_letters]:
            transport.publish(
                dead_letter_topic(self.worker_id),
                dead_letter_body(worker=self.worker_id, letter=letter, keep_bytes=keep),
                qos=DEAD_LETTER_QOS,
            )
        # Confirm before acknowledging: the gateway lets go only of what is stored. At QoS 0 (CONFIRM_QOS) the
        # confirmation is on the wire before the acknowledgements that follow, whatever the backlog.
        for topic, payload in confirmations(batch.senders, worker=self.worker_id):
            transport.publish(topic, payload, qos=CONFIRM_QOS)
        self.stats.confirmed += len(batch.senders)
        self.stats.deaths += len(batch.wills)
        if batch.generation == self._generation:
            for mid in batch.mids:
                transport.ack(mid)
        # Else the connection that delivered them is gone; the broker hands them out again (stored twice, same
        # points: harmless).
        s = self.stats
        written = len(batch.lines) - (len(result.outcome.refused) if result.outcome else 0)
        s.batches += 1
        s.points_written += written
        s.last_batch_size = written
        s.max_batch_size = max(s.max_batch_size, written)
        s.lag_ms = int((time.monotonic() - batch.first_received) * 1000)
        # From each message's own time to its being stored: end to end when gateways run at real time.
        stored_at = wall_ms()
        for held in batch.held:
            if held.sender is not None:
                self.latency.add(max(0, stored_at - held.ts))

    def _block(self, batch: Batch, error: WriteError) -> None:
        self._blocked = (batch, error)
        self._tracker.mark_all_changed()  # its records of the gateways were in the batch
        self._blocked_since_ms = wall_ms()
        self.stats.blocked = 1
        log.error(
            "InfluxDB does not take writes: %s. Worker %s stops taking messages (the broker and the gateways keep "
            "them), holds %d, and tries again by itself every few seconds.",
            error,
            self.worker_id,
            batch.messages() + self._batch.messages(),
        )

    # -- health --------------------------------------------------------------------------------------------

    def _health(self) -> dict[str, object]:
        blocked = self._blocked
        return {
            "worker": self.worker_id,
            "state": "blocked" if blocked else "ok",
            "reason": str(blocked[1]) if blocked else "",
            "since_ms": self._blocked_since_ms if blocked else 0,
            "unacked": self._unacked(),
            "ts": wall_ms(),
            **self.stats.as_fields(),
            "latency_bounds_ms": list(BOUNDS_MS),
            "latency_counts": self.latency.counts,
        }

    def _publish_health(self, qos: Qos = HEALTH_QOS) -> None:
        topic = health_topic("ingest", self.worker_id)
        self._transport.publish(topic, json.dumps(self._health()).encode(), retain=True, qos=qos)
        self.healths_published += 1

    def _maybe_health(self) -> None:
        if time.monotonic() < self._next_health:
            return
        self._next_health = time.monotonic() + self._ingest.health_interval_s
        point = Point(Measurement.INGEST_HEALTH, {Tag.WORKER: self.worker_id}, self.stats.as_fields(), wall_ms())
        self._batch.add_line(encode_point(point))
        self._publish_health()

    # -- the loops -----------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Receive and write until ``stop``; reconnect whenever the broker goes away; wait out InfluxDB."""
        writer = threading.Thread(target=self._writer_loop, name=f"{self.worker_id}-writer", daemon=True)
        writer.start()
        try:
            while not stop.is_set():
                if self._blocked is not None:
                    self._wait_out_blocked(stop)
                    continue
                try:
                    self._session(stop)
                except TransportError as error:
                    if stop.is_set():
                        break
                    delay = self._reconnect.delay(self._reconnects)
                    self._reconnects += 1
                    log.warning("%s; reconnecting in %.1f s", error, delay)
                    stop.wait(delay)
        except Exception:
            # Not one message's fault (those are dead-lettered inside their boundary): the worker's own.
            log.critical(
                "worker %s stops: its own machinery failed. Nothing it had not stored was acknowledged; the "
                "broker keeps it for the worker's next start (or another worker). The error follows.",
                self.worker_id,
                exc_info=True,
            )
            raise
        finally:
            self._to_write.put(None)
            writer.join(timeout=60)
            self._transport.close()
            self._writer.close()
            self._seen.close()

    def _session(self, stop: threading.Event) -> None:
        transport = self._transport
        session_present = transport.connect()
        self._reconnects = 0  # the broker answered: the next loss starts the backoff afresh
        # A new connection: what was received and not acknowledged is handed out again by the broker.
        self._generation += 1
        self._batch = Batch(self._generation)
        topic_filter = shared(self._ingest.group, data_filter())
        transport.subscribe(topic_filter)
        answered_by = time.monotonic() + SUBSCRIBE_TIMEOUT_S
        self._next_health = 0.0
        try:
            while not stop.is_set():
                read = self._unacked() < self._ingest.max_unacked
                transport.poll(POLL_S, read=read)
                if answered_by:
                    if transport.subscribed():
                        answered_by = 0.0
                        session = "resumed" if session_present else "new"
                        log.info("worker %s subscribed to %s (session %s)", self.worker_id, topic_filter, session)
                        announce_ready(self.settings.ready_file, self.worker_id)
                    elif not read:  # the answer waits behind what we hold back, not on the broker
                        answered_by = time.monotonic() + SUBSCRIBE_TIMEOUT_S
                    elif time.monotonic() > answered_by:
                        raise TransportError(f"no answer to the subscription to {topic_filter}")
                self._release_written()
                if self._blocked is not None:
                    self._publish_health(LAST_WORD_QOS)
                    break
                self._maybe_flush()
                self._maybe_health()
            if stop.is_set() and self._blocked is None:
                self._drain(stop_deadline=time.monotonic() + 30)
                self._publish_health(LAST_WORD_QOS)  # what it did, for whoever reads the retained health
        finally:
            transport.disconnect()

    def _holds(self) -> bool:
        return bool(self._batch.lines or self._batch.wills or self._writing is not None)

    def _drain(self, *, stop_deadline: float) -> None:
        """A clean stop writes, confirms and acknowledges what it holds."""
        while self._holds() and time.monotonic() < stop_deadline:
            self._maybe_flush(force=True)
            self._transport.poll(POLL_S, read=False)
            self._release_written()
            if self._blocked is not None:
                return

    def _wait_out_blocked(self, stop: threading.Event) -> None:
        """Try the held batch again with backoff until InfluxDB takes it (then reconnect) or ``stop``."""
        assert self._blocked is not None
        batch, _ = self._blocked
        probe = batch.lines[: max(1, min(len(batch.lines), 1))]
        policy = RetryPolicy(BLOCKED_RETRY_INITIAL_S, self._ingest.blocked_retry_max_s)
        attempt = 0
        delay = policy.backoff(attempt)
        while not stop.is_set():
            stop.wait(delay)
            try:
                store_lines(self._writer, probe, RetryPolicy(max_total_s=0.0))
            except WriteError as error:
                attempt += 1
                delay = policy.delay(attempt, retry_after_s=error.retry_after_s)
                log.warning("InfluxDB still does not take writes (%s); trying again in %.0f s", error, delay)
                continue
            log.warning(
                "InfluxDB takes writes again after %.0f s; worker %s resumes",
                (wall_ms() - self._blocked_since_ms) / 1000,
                self.worker_id,
            )
            self._blocked = None
            self.stats.blocked = 0
            return
