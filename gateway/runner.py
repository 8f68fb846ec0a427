"""The gateway's loop: read every machine at each window edge, telemetry tick and poll; publish what the
trackers say; heartbeat; on stop, close partial windows, announce death and drain the spool."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ftel.contract.models import GatewayStatus, Heartbeat, MachineMessage
from ftel.contract.topics import GatewayKind, MachineKind, gateway_topic, machine_topic
from ftel.settings import MqttSettings
from gateway.driver import MachineDriver
from gateway.publisher import GatewayPublisher
from gateway.tracker import MachineTracker, Origin

log = logging.getLogger(__name__)

KIND_OF: dict[str, MachineKind] = {
    "MachineMeta": MachineKind.META,
    "StateChange": MachineKind.EVENT,
    "StateWindow": MachineKind.WINDOW,
    "Telemetry": MachineKind.TELEMETRY,
}
# At shutdown, wait for the broker while it keeps acknowledging; give up after this long without progress.
DRAIN_STALL_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class GatewayTiming:
    window_ms: int
    telemetry_interval_ms: int
    heartbeat_interval_ms: int
    tick_s: float


@dataclass(frozen=True, slots=True)
class Progress:
    sim_ms: int
    published: int
    acknowledged: int
    spool_depth: int
    dropped: int
    connected: bool


def edges_between(after_ms: int, until_ms: int, interval_ms: int) -> range:
    """Multiples of ``interval_ms`` in (after_ms, until_ms]."""
    first = (after_ms // interval_ms + 1) * interval_ms
    return range(first, until_ms + 1, interval_ms)


class Gateway:
    def __init__(
        self,
        origin: Origin,
        drivers: Sequence[MachineDriver],
        *,
        now_ms: Callable[[], int],
        timing: GatewayTiming,
        mqtt_settings: MqttSettings,
        spool_max_messages: int,
    ) -> None:
        self.origin = origin
        self._drivers = list(drivers)
        self._now_ms = now_ms
        self._timing = timing
        self._seq = itertools.count(1)
        self._boot_id = int(time.time() * 1000)
        self._started_wall = time.monotonic()
        self._trackers = [
            MachineTracker(
                origin,
                d.info,
                window_ms=timing.window_ms,
                telemetry_interval_ms=timing.telemetry_interval_ms,
                next_seq=self._next_seq,
            )
            for d in self._drivers
        ]
        self._machine_types = {d.info.machine_id: d.info.machine_type for d in self._drivers}
        status_topic = gateway_topic(origin.site, origin.workshop, origin.gateway_id, GatewayKind.STATUS)
        self._status_topic = status_topic
        self.publisher = GatewayPublisher(
            mqtt_settings,
            client_id=origin.gateway_id,
            will=(status_topic, self._status(online=False, ts=now_ms())),
            birth=lambda: (status_topic, self._status(online=True, ts=self._now_ms())),
            spool_max_messages=spool_max_messages,
        )

    def _next_seq(self) -> int:
        return next(self._seq)

    def _status(self, *, online: bool, ts: int) -> GatewayStatus:
        o = self.origin
        return GatewayStatus(
            site=o.site,
            workshop=o.workshop,
            gateway_id=o.gateway_id,
            seq=self._next_seq(),
            ts=ts,
            online=online,
            boot_id=self._boot_id,
            machines=self._machine_types,
        )

    def _heartbeat(self, ts: int) -> Heartbeat:
        o, c = self.origin, self.publisher.counters
        return Heartbeat(
            site=o.site,
            workshop=o.workshop,
            gateway_id=o.gateway_id,
            seq=self._next_seq(),
            ts=ts,
            boot_id=self._boot_id,
            uptime_ms=int((time.monotonic() - self._started_wall) * 1000),
            machines=len(self._drivers),
            spool_depth=max(0, c.depth),
            spool_dropped=c.dropped,
        )

    def _publish(self, messages: list[MachineMessage]) -> None:
        o = self.origin
        for message in messages:
            kind = KIND_OF[type(message).__name__]
            topic = machine_topic(o.site, o.workshop, message.machine_type.value, message.machine_id, kind)
            self.publisher.publish(topic, message, retain=kind is MachineKind.META)

    def progress(self, sim_ms: int) -> Progress:
        c = self.publisher.counters
        return Progress(
            sim_ms, c.published, c.acknowledged, max(0, c.depth), c.dropped, self.publisher.connected.is_set()
        )

    def run(
        self,
        stop: threading.Event,
        *,
        end_ms: int | None = None,
        first_read_ms: int | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        progress_every_s: float = 2.0,
    ) -> Progress:
        """``first_read_ms``: when to start watching (a fresh simulation: its start); default: now."""
        t = self._timing
        self.publisher.start()
        last = self._now_ms() if first_read_ms is None else first_read_ms
        if end_ms is not None:
            last = min(last, end_ms)
        self._publish([tracker.meta(last) for tracker in self._trackers])
        self._read_all(last)
        next_progress = time.monotonic() + progress_every_s
        while not stop.is_set():
            now = self._now_ms()
            if end_ms is not None:
                now = min(now, end_ms)
            if now > last:
                edges = set(edges_between(last, now, t.window_ms))
                edges |= set(edges_between(last, now, t.telemetry_interval_ms))
                edges.add(now)
                for at in sorted(edges):
                    self._read_all(at)
                heartbeats = edges_between(last, now, t.heartbeat_interval_ms)
                if len(heartbeats):
                    self.publisher.publish(
                        gateway_topic(
                            self.origin.site,
                            self.origin.workshop,
                            self.origin.gateway_id,
                            GatewayKind.HEARTBEAT,
                        ),
                        self._heartbeat(heartbeats[-1]),
                    )
                last = now
            if on_progress and time.monotonic() >= next_progress:
                on_progress(self.progress(last))
                next_progress = time.monotonic() + progress_every_s
            if end_ms is not None and last >= end_ms:
                break
            stop.wait(t.tick_s)
        return self.shutdown(last)

    def _read_all(self, at_ms: int) -> None:
        out: list[MachineMessage] = []
        for driver, tracker in zip(self._drivers, self._trackers, strict=True):
            for reading in driver.read(at_ms):
                out.extend(tracker.observe(reading))
        self._publish(out)

    def shutdown(self, at_ms: int) -> Progress:
        """Close partial windows, announce the death (a clean disconnect sends no last will), drain, stop."""
        closing: list[MachineMessage] = []
        for tracker in self._trackers:
            closing.extend(tracker.close(at_ms))
        self._publish(closing)
        self.publisher.publish(self._status_topic, self._status(online=False, ts=at_ms), retain=True)
        if not self.publisher.drain(DRAIN_STALL_TIMEOUT_S):
            log.error(
                "%d messages not acknowledged by the broker at shutdown: they are lost",
                self.publisher.counters.depth,
            )
        final = self.progress(at_ms)
        self.publisher.stop()
        return final
