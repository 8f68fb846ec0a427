"""A vanished gateway's death, written by ingest (ingest/deaths.py): when it died (its last stored message, by
any worker), once (a repeat writes the same points), never for a stale will; and the worker with fake ports
(tests/unit/test_ingest_worker.py) acknowledges a will only once its death is written. The integration test
(tests/integration/test_ingest_deaths.py) proves the same on the real broker and InfluxDB."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ftel.contract import encode, topic_of
from ftel.contract.models import GatewayStatus, Heartbeat, Message, StateChange
from ftel.contract.states import MachineState, MachineType
from ftel.settings import IngestSettings, Settings
from ftel.storage.lineproto import encode_batch
from ftel.storage.points import death_points
from ftel.storage.query import QueryError
from ftel.storage.seen import SEEN_BUCKET_MS, GatewayKey, Seen
from ingest.deaths import Deaths, SeenTracker, death_at, death_lines
from ingest.worker import IngestWorker
from tests.support import wait_until
from tests.unit.test_ingest_worker import FakeTransport, FakeWriter

T0 = 1_795_000_000_000
BOOT = T0 - 3_600_000
GW: GatewayKey = ("qinghe", "knit", "gw-knit")
MACHINES = {"KNIT-001": MachineType.KNITTING, "KNIT-002": MachineType.KNITTING}
COMMON = {"site": "qinghe", "workshop": "knit", "gateway_id": "gw-knit"}


def will(boot_id: int = BOOT, ts: int = BOOT) -> GatewayStatus:
    """Registered at connect: its time is the connect's."""
    return GatewayStatus(**COMMON, seq=0, ts=ts, online=False, will=True, boot_id=boot_id, machines=MACHINES)


def heartbeat(seq: int, ts: int, boot_id: int = BOOT) -> Heartbeat:
    return Heartbeat(
        **COMMON, seq=seq, ts=ts, boot_id=boot_id, uptime_ms=ts - boot_id, machines=2, spool_depth=0, spool_dropped=0
    )


def change(seq: int, ts: int) -> StateChange:
    return StateChange(
        **COMMON,
        seq=seq,
        ts=ts,
        machine_type=MachineType.KNITTING,
        machine_id="KNIT-001",
        state=MachineState.IDLE,
        prev_state=MachineState.RUNNING,
        prev_duration_ms=1000,
    )


# -- when it died (pure) -----------------------------------------------------------------------------------


def test_a_will_dates_the_death_by_the_newest_message_stored_of_its_gateway() -> None:
    assert death_at(will(), Seen(T0 + 5000, BOOT)) == T0 + 5000
    # Nothing stored since the will was registered: the connect is the last moment known.
    assert death_at(will(), None) == BOOT
    assert death_at(will(ts=T0), Seen(T0 - 1, BOOT)) == T0


def test_a_will_of_an_older_boot_than_one_stored_is_stale_and_writes_nothing() -> None:
    assert death_at(will(), Seen(T0, BOOT + 1)) is None
    assert death_lines(will(), Seen(T0, BOOT + 1)) == []
    # A record that names no boot (only machine messages were stored) does not make it stale.
    assert death_at(will(), Seen(T0, 0)) == T0


def test_the_death_is_the_gateway_offline_and_each_machine_offline_at_that_time() -> None:
    lines = death_lines(will(), Seen(T0 + 5000, BOOT))
    assert "\n".join(lines).encode() == encode_batch(death_points(will(), T0 + 5000))
    assert [line.split(",")[0] for line in lines] == ["gateway_status", "machine_state", "machine_state"]
    assert all(line.endswith(f" {T0 + 5000}") for line in lines)
    # Decided again (a redelivered will, another worker): the very same points, which overwrite.
    assert death_lines(will(), Seen(T0 + 5000, BOOT)) == lines


# -- what a worker stored of each gateway (pure) -------------------------------------------------------------


def test_the_record_keeps_the_newest_time_and_boot_and_leaves_wills_out() -> None:
    tracker = SeenTracker()
    for message in (heartbeat(1, T0 + 1000), change(2, T0 + 3000), change(3, T0 + 2000), will(ts=T0 + 9000)):
        tracker.note(message)
    (line,) = tracker.take_lines(worker="w-1")
    assert line == (
        f"gateway_seen,gateway_id=gw-knit,site=qinghe,worker=w-1,workshop=knit "
        f"boot_id={BOOT}i,last_ms={T0 + 3000}i {T0 + 3000 - (T0 + 3000) % SEEN_BUCKET_MS}"
    )
    assert tracker.take_lines(worker="w-1") == []  # nothing changed since
    tracker.note(change(3, T0 + 2000))  # an older message again: nothing new
    assert tracker.take_lines(worker="w-1") == []
    tracker.mark_all_changed()  # a batch was not stored: written again
    assert tracker.take_lines(worker="w-1") == [line]


def test_a_record_without_a_boot_leaves_the_stored_boot_alone() -> None:
    tracker = SeenTracker()
    tracker.note(change(1, T0))
    (line,) = tracker.take_lines(worker="w-1")
    assert "boot_id" not in line  # same series and time: InfluxDB keeps the boot_id field stored before


def test_wills_wait_out_the_settle_time_and_one_from_an_older_connection_is_dropped() -> None:
    deaths = Deaths(settle_s=1.0)
    deaths.add(will(), mid=7, generation=1, now=10.0)
    deaths.add(will(boot_id=BOOT + 1), mid=8, generation=2, now=10.5)
    # Mid 7 came on connection 1, which is gone: dropped (the broker sends it again); mid 8 is not due yet.
    assert deaths.due(11.4, generation=2) == []
    assert len(deaths) == 1
    (due,) = deaths.due(11.5, generation=2)
    assert (due.mid, due.will.boot_id) == (8, BOOT + 1)
    assert len(deaths) == 0


# -- the worker, with fake ports -----------------------------------------------------------------------------


@dataclass
class FakeSeen:
    """Reads the ``gateway_seen`` points the fake InfluxDB holds, as InfluxSeen reads the real one's."""

    writer: FakeWriter

    def last_seen(self, gateway: GatewayKey, *, since_ms: int) -> Seen | None:
        found: dict[tuple[str, int], dict[str, int]] = {}
        for line in self.writer.lines():
            if not line.startswith("gateway_seen,"):
                continue
            series, fields, ts = line.split(" ")
            tags = dict(t.split("=") for t in series.split(",")[1:])
            if (tags["site"], tags["workshop"], tags["gateway_id"]) != gateway or int(
                ts
            ) < since_ms - since_ms % SEEN_BUCKET_MS:
                continue
            point = found.setdefault((tags["worker"], int(ts)), {})
            point.update({k: int(v.rstrip("i")) for k, v in (f.split("=") for f in fields.split(","))})
        if not found:
            return None
        return Seen(max(p["last_ms"] for p in found.values()), max(p.get("boot_id", 0) for p in found.values()))

    def close(self) -> None:
        pass


def wire(message: Message, mid: int) -> tuple[str, bytes, int]:
    return topic_of(message), encode(message), mid


@dataclass
class Worker:
    worker: IngestWorker
    transport: FakeTransport
    stop: threading.Event
    thread: threading.Thread


@pytest.fixture
def influx() -> FakeWriter:
    return FakeWriter()


@pytest.fixture
def workers(influx: FakeWriter) -> Iterator[list[Worker]]:
    """Two workers of one group: one fake InfluxDB, each its own connection."""
    out: list[Worker] = []
    for worker_id in ("w-1", "w-2"):
        transport = FakeTransport()
        ingest = IngestSettings(
            worker_id=worker_id,
            flush_interval_s=0.01,
            death_settle_s=0.05,
            health_interval_s=3600,
            max_age_s=10**9,
            max_future_skew_s=10**9,
        )
        worker = IngestWorker(Settings(ingest=ingest), transport=transport, writer=influx, seen=FakeSeen(influx))
        transport.on_message = worker._on_message
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        out.append(Worker(worker, transport, stop, thread))
    yield out
    for w in out:
        w.stop.set()
        w.thread.join(10)
        assert not w.thread.is_alive()


def offline_lines(influx: FakeWriter) -> list[str]:
    return [line for line in influx.lines() if line.startswith("machine_state,") and 'state="OFFLINE"' in line]


def test_a_will_is_acknowledged_only_once_its_death_is_written_at_the_last_message_any_worker_stored(
    workers: list[Worker], influx: FakeWriter
) -> None:
    one, two = workers
    # The shared subscription gave the gateway's last messages to the first worker, its will to the second.
    one.transport.send(wire(heartbeat(1, T0), 1), wire(change(2, T0 + 4000), 2))
    wait_until(lambda: len(one.transport.entries("ack")) == 2, timeout_s=5, what="the messages stored", every_s=0.01)
    influx.gate.clear()  # InfluxDB takes its time with the death
    two.transport.send(wire(will(), 9))
    wait_until(lambda: two.worker.stats.messages_in == 1, timeout_s=5, what="the will in", every_s=0.01)
    assert two.transport.entries("ack") == []
    influx.gate.set()
    wait_until(lambda: two.transport.entries("ack") == [9], timeout_s=5, what="the will acknowledged", every_s=0.01)
    tags = "machine_type=knitting,site=qinghe,workshop=knit"
    assert offline_lines(influx) == [
        f'machine_state,machine_id={m},{tags} state="OFFLINE",state_code=5i {T0 + 4000}' for m in sorted(MACHINES)
    ]
    assert any(line.startswith("gateway_status,") and line.endswith(f" {T0 + 4000}") for line in influx.lines())
    assert two.worker.stats.deaths == 1

    # The same will again (the broker redelivered it, to the other worker): the very same points.
    one.transport.send(wire(will(), 3))
    wait_until(lambda: 3 in one.transport.entries("ack"), timeout_s=5, what="the repeat acknowledged", every_s=0.01)
    written = offline_lines(influx)
    assert written[2:] == written[:2]  # same series, same time: InfluxDB keeps one of each


def test_a_will_after_a_newer_boot_was_stored_writes_no_death_and_is_acknowledged(
    workers: list[Worker], influx: FakeWriter
) -> None:
    one, two = workers
    # The gateway came back (a new boot) before the old connection's will was decided.
    one.transport.send(wire(heartbeat(1, T0, boot_id=BOOT + 60_000), 1))
    wait_until(lambda: one.transport.entries("ack") == [1], timeout_s=5, what="the new boot stored", every_s=0.01)
    two.transport.send(wire(will(), 5))
    wait_until(lambda: two.transport.entries("ack") == [5], timeout_s=5, what="the will acknowledged", every_s=0.01)
    assert offline_lines(influx) == []
    assert two.worker.stats.deaths == 1


class UnreadableSeen:
    """An InfluxDB user that may only write (as `ftel auth` grants ingest today)."""

    def last_seen(self, gateway: GatewayKey, *, since_ms: int) -> Seen | None:
        raise QueryError("InfluxDB answered 403: not authorized", status=403)

    def close(self) -> None:
        pass


def test_a_worker_that_may_not_read_dates_the_death_by_its_own_record_and_does_not_block(influx: FakeWriter) -> None:
    transport = FakeTransport()
    ingest = IngestSettings(worker_id="w-1", flush_interval_s=0.01, death_settle_s=0.05, health_interval_s=3600,
                            max_age_s=10**9, max_future_skew_s=10**9)  # fmt: skip
    worker = IngestWorker(Settings(ingest=ingest), transport=transport, writer=influx, seen=UnreadableSeen())
    transport.on_message = worker._on_message
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        transport.send(wire(heartbeat(1, T0), 1), wire(change(2, T0 + 4000), 2), wire(will(), 3))
        wait_until(lambda: sorted(transport.entries("ack")) == [1, 2, 3], timeout_s=5, what="acks", every_s=0.01)
        assert {line.rsplit(" ", 1)[1] for line in offline_lines(influx)} == {str(T0 + 4000)}
        assert worker.stats.blocked == 0
    finally:
        stop.set()
        thread.join(10)
