"""The gateway's delivery with a fake link (the port of gateway/publisher.py): a message leaves the spool on
ingest's confirmation and never on the broker's PUBACK; nothing is counted as sent when the link could not take
it; every reconnect sends again what is unconfirmed; a hole goes again after the grace, then on a growing
backoff; shutdown drains while confirmations come, and what stays unconfirmed waits in the spool for the next
start. The integration tests (tests/integration/test_pipeline.py, the fault scenarios) prove the same on a real
broker with the paho link."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftel.contract import Confirmation
from ftel.contract.states import MachineState, MachineType
from ftel.contract.topics import GatewayKind, confirm_topic, gateway_topic
from gateway.core import GatewayTiming
from gateway.driver import MachineInfo, Reading
from gateway.runner import DRAIN_GRACE_S, DeliveryOptions, Gateway
from gateway.tracker import Origin

START = 1_780_000_020_000
ORIGIN = Origin("site-1", "yarn", "gw-yarn")
STATUS_TOPIC = gateway_topic(ORIGIN.site, ORIGIN.workshop, ORIGIN.gateway_id, GatewayKind.STATUS)
GRACE_S = 10.0
TIMING = GatewayTiming(
    window_ms=60_000, telemetry_interval_ms=30_000, heartbeat_interval_ms=10_000, tick_s=0.01, telemetry_spread=False
)


class FakeLink:
    """A broker link that does what the test says: up or down, PUBACKs when asked, confirmations when given."""

    def __init__(self, *, up: bool = True, confirm_on_publish: bool = False) -> None:
        self.up = up
        self.confirm_on_publish = confirm_on_publish
        self.started: tuple[tuple[str, bytes], str] | None = None
        self.stopped = False
        self.sent: list[tuple[str, bytes, bool]] = []
        self.refuse_after: int | None = None  # the link goes down after this many more publications
        self._connects = 0
        self._pubacks = 0
        self._confirmations: list[Confirmation] = []

    def start(self, *, will: tuple[str, bytes], confirm_topic: str) -> None:
        self.started = (will, confirm_topic)
        self._connects += self.up

    def is_connected(self) -> bool:
        return self.up

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        if self.refuse_after is not None:
            if self.refuse_after == 0:
                self.up = False
            self.refuse_after -= 1
        if not self.up:
            return False
        self.sent.append((topic, payload, retain))
        if self.confirm_on_publish:
            self.confirm(seq_of(payload))
        return True

    def take_connects(self) -> int:
        count, self._connects = self._connects, 0
        return count

    def take_pubacks(self) -> int:
        count, self._pubacks = self._pubacks, 0
        return count

    def take_confirmations(self) -> list[Confirmation]:
        out, self._confirmations = self._confirmations, []
        return out

    def stop(self) -> None:
        self.stopped = True

    # -- what the test does --

    def puback_all(self) -> None:
        self.puback(len(self.sent))

    def puback(self, count: int) -> None:
        self._pubacks += count

    def connect(self) -> None:
        self.up = True
        self._connects += 1

    def confirm(self, *seqs: int) -> None:
        self._confirmations.append(
            Confirmation(
                site=ORIGIN.site,
                workshop=ORIGIN.workshop,
                gateway_id=ORIGIN.gateway_id,
                worker="ingest-1",
                ranges=[(seq, seq) for seq in seqs],
            )
        )

    def seqs(self) -> list[int]:
        return [seq_of(payload) for _, payload, _ in self.sent]

    def take_sent(self) -> list[int]:
        seqs = self.seqs()
        self.sent.clear()
        return seqs


def seq_of(payload: bytes) -> int:
    seq = json.loads(payload)["seq"]
    assert isinstance(seq, int)
    return seq


class FakeDriver:
    def __init__(self, machine_id: str) -> None:
        self._info = MachineInfo(machine_id, MachineType.SPINNING, "RX", "line-1", 20.0, "m/min", 100.0)

    @property
    def info(self) -> MachineInfo:
        return self._info

    @property
    def resume_key(self) -> str:
        return "fake"

    def read(self, at_ms: int) -> list[Reading]:
        return [Reading(at_ms, MachineState.RUNNING, None, 0, 0, 20.0, 40.0, 0)]

    def resume(self, at_ms: int) -> bool:
        return True


class Clock:
    """Monotonic seconds that move when the test says, or by ``step`` at every look (a drain's own time)."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 100.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def gateway(
    link: FakeLink,
    clock: Clock,
    *,
    state_dir: Path | None = None,
    max_in_flight: int = 1000,
    drain_stall_s: float = 3.0,
) -> Gateway:
    return Gateway(
        ORIGIN,
        [FakeDriver("RS-01"), FakeDriver("RS-02")],
        now_ms=lambda: START,  # plant time stands still: only delivery moves
        timing=TIMING,
        link=link,
        spool_max_messages=10_000,
        state_dir=state_dir,
        delivery=DeliveryOptions(
            max_in_flight=max_in_flight,
            hole_grace_s=GRACE_S,
            resend_max_s=1_000.0,
            drain_stall_s=drain_stall_s,
            checkpoint_every_s=1.0,
            hole_scan_every_s=0.0,
        ),
        monotonic=clock,
    )


def started(link: FakeLink, clock: Clock, **options: object) -> tuple[Gateway, list[int]]:
    """A gateway that took its first readings and sent them; the seqs it sent."""
    g = gateway(link, clock, **options)  # type: ignore[arg-type]
    g.begin(first_read_ms=START)
    g.tick()  # sends what the first readings made, and sees the connect
    g.tick()  # sends the connect's birth
    return g, link.take_sent()


def test_the_link_is_started_with_the_gateways_will_and_its_confirmation_topic() -> None:
    link = FakeLink()
    g, _ = started(link, Clock(step=0.01))  # a clock that moves: a drain that failed to stop ends anyway
    assert link.started is not None
    (will_topic, will), topic = link.started
    assert will_topic == STATUS_TOPIC
    assert json.loads(will)["will"] is True
    assert json.loads(will)["online"] is False
    assert topic == confirm_topic(ORIGIN.site, ORIGIN.workshop, ORIGIN.gateway_id)
    g.abandon_drain()
    g.shutdown(START)
    assert link.stopped


def test_a_message_leaves_the_spool_on_ingests_confirmation_never_on_the_brokers_puback() -> None:
    link = FakeLink()
    g, sent = started(link, Clock())
    assert sent, "the first readings are sent"
    link.puback_all()
    g.tick()
    assert len(g.spool) == len(sent) > 0
    assert g.confirmed == 0
    link.confirm(*sent[:2])
    g.tick()
    assert g.confirmed == 2
    assert sorted(g.spool.seqs()) == sorted(sent[2:])


def test_a_confirmation_counts_once_and_one_for_a_message_not_held_counts_nothing() -> None:
    link = FakeLink()
    g, sent = started(link, Clock())
    link.confirm(sent[0])
    link.confirm(sent[0], 9_999)  # again, and a seq this gateway does not hold
    g.tick()
    assert g.confirmed == 1
    assert g.unconfirmed == len(sent) - 1


def test_nothing_is_counted_as_sent_while_the_link_is_down_and_all_of_it_goes_when_it_connects() -> None:
    link = FakeLink(up=False)
    g, sent = started(link, Clock())
    assert sent == []
    assert g.published == 0
    assert not g.progress(START).connected
    held = g.spool.seqs()
    link.connect()
    g.tick()
    g.tick()
    # The connect's birth re-states the machines, after everything held.
    births = [seq_of(p) for t, p, _ in link.sent if t == STATUS_TOPIC and json.loads(p)["online"]]
    sent = link.take_sent()
    assert set(held) <= set(sent)
    assert g.published == len(sent)
    assert len(births) == 1
    assert births[0] > max(held)


def test_a_link_that_goes_down_mid_batch_counts_only_what_it_took_and_sends_the_rest_after_reconnecting() -> None:
    link = FakeLink(up=False)
    g, _ = started(link, Clock())
    held = g.spool.seqs()
    link.connect()
    link.refuse_after = 2
    g.tick()
    took = link.take_sent()
    assert len(took) == 2
    assert g.published == 2
    assert g.confirmed == 0
    link.refuse_after = None
    link.connect()
    g.tick()
    again = link.take_sent()
    assert set(held) <= set(took) | set(again)
    assert g.published == 2 + len(again)


def test_every_reconnect_sends_again_what_is_unconfirmed_and_only_that() -> None:
    link = FakeLink()
    g, sent = started(link, Clock())
    link.confirm(*sent[:3])
    g.tick()
    link.connect()  # a reconnect: the broker may have lost what it had
    g.tick()
    again = link.seqs()
    assert set(sent[3:]) <= set(again)
    assert not set(sent[:3]) & set(again)


def test_a_retained_message_is_retained_on_its_first_send_only() -> None:
    link = FakeLink()
    g = gateway(link, Clock())
    g.begin(first_read_ms=START)
    g.tick()
    first = {seq_of(p): r for _, p, r in link.sent}
    link.sent.clear()
    link.connect()
    g.tick()
    assert any(first.values()), "machine metas are retained"
    assert not any(r for _, p, r in link.sent if seq_of(p) in first)


def test_a_fresh_start_sends_each_meta_once_and_every_reconnect_states_them_again() -> None:
    link = FakeLink()
    g = gateway(link, Clock())
    g.begin(first_read_ms=START)
    g.tick()  # sends what the first readings made, and sees the connect
    g.tick()  # sends the connect's birth
    metas = [t for t, _, _ in link.sent if t.endswith("/meta")]
    births = [i for i, (t, p, _) in enumerate(link.sent) if t == STATUS_TOPIC and json.loads(p)["online"]]
    assert len(births) == 1
    assert len(metas) == len(set(metas)) == len(g.core.trackers) > 1
    assert not [t for t, _, _ in link.sent[births[0] :] if t.endswith("/meta")], "the birth repeated the metas"
    link.confirm(*link.take_sent())
    g.tick()
    link.connect()  # the broker may have lost them: the reconnect's birth states them again
    g.tick()
    g.tick()
    assert sorted(t for t, _, _ in link.sent if t.endswith("/meta")) == sorted(metas)


def test_a_hole_goes_again_after_the_grace_then_on_a_growing_backoff() -> None:
    link, clock = FakeLink(), Clock()
    g, sent = started(link, clock)
    *holes, newest = sent
    link.confirm(newest)
    g.tick()
    clock.advance(GRACE_S - 0.5)
    g.tick()
    assert link.take_sent() == [], "within the grace a gap may be a batch apart"
    clock.advance(1.0)
    g.tick()
    assert link.take_sent() == holes
    # Second time round the wait is doubled.
    clock.advance(GRACE_S + 0.5)
    g.tick()
    assert link.take_sent() == []
    clock.advance(GRACE_S)
    g.tick()
    assert link.take_sent() == holes
    link.confirm(*holes)
    g.tick()
    clock.advance(10 * GRACE_S)
    g.tick()
    assert link.take_sent() == []
    assert g.unconfirmed == 0
    assert g.confirmed == len(sent)


def test_nothing_newer_confirmed_is_no_hole() -> None:
    link, clock = FakeLink(), Clock()
    g, sent = started(link, clock)
    link.confirm(sent[0])
    g.tick()
    clock.advance(100 * GRACE_S)
    g.tick()
    assert link.take_sent() == []


def test_no_more_than_max_in_flight_wait_for_a_puback() -> None:
    link = FakeLink()
    g, sent = started(link, Clock(), max_in_flight=3)
    assert len(sent) == 3
    assert g.unconfirmed > 3
    g.tick()
    assert link.take_sent() == []
    link.puback(2)
    g.tick()
    assert len(link.take_sent()) == 2


def test_shutdown_sends_the_death_and_drains_while_confirmations_come() -> None:
    link = FakeLink(confirm_on_publish=True)
    g = gateway(link, Clock(step=0.001))
    g.begin(first_read_ms=START)
    final = g.shutdown(START + 1)
    deaths = [json.loads(p) for t, p, _ in link.sent if t == STATUS_TOPIC and not json.loads(p)["online"]]
    assert len(deaths) == 1
    assert deaths[0]["will"] is False
    assert final.spool_depth == 0
    assert final.confirmed == final.published == len(link.sent)
    assert link.stopped


def test_a_drain_without_confirmations_stops_after_the_stall_and_the_next_start_sends_what_was_left(
    tmp_path: Path,
) -> None:
    link, clock = FakeLink(), Clock(step=0.25)
    g = gateway(link, clock, state_dir=tmp_path, drain_stall_s=2 * DRAIN_GRACE_S)
    g.begin(first_read_ms=START)
    began = clock.now
    final = g.shutdown(START + 1)
    assert clock.now - began >= 2 * DRAIN_GRACE_S
    assert final.confirmed == 0
    assert final.spool_depth == len(set(link.seqs())) > 0
    # While draining, nothing newer can reveal a gap: each unconfirmed message went again after the short grace.
    assert len(link.seqs()) > len(set(link.seqs()))
    assert link.stopped
    link2 = FakeLink()
    again = gateway(link2, Clock(step=0.01), state_dir=tmp_path)
    assert again.resumed
    again.begin(first_read_ms=START + 1)
    again.tick()
    assert set(link.seqs()) <= set(link2.seqs())
    again.abandon_drain()
    again.shutdown(START + 1)


def test_a_drain_outlasts_a_message_that_goes_missing_again_and_again() -> None:
    """A worker gone for good takes its share of the sends until its session expires: a message may be lost
    several times in a row. The drain's resends stay within its stall limit, so it is not the gateway's own
    backoff that ends the drain with the message still in the spool."""
    link, clock = FakeLink(), Clock(step=0.25)
    g = gateway(link, clock, drain_stall_s=3 * DRAIN_GRACE_S)
    g.begin(first_read_ms=START)
    # Sent, then again after the drain's grace (5 s), then on a backoff (10 s) that would pass the 15 s stall
    # before its third send, the message lost twice: its waits are capped at a quarter of the stall instead.
    lost_times = 2

    def confirm_each_after_its_losses() -> None:
        counts: dict[int, int] = {}
        for seq in link.seqs():
            counts[seq] = counts.get(seq, 0) + 1
        through = [seq for seq, sent in counts.items() if sent > lost_times]
        if through:
            link.confirm(*through)

    original_publish = link.publish

    def publish(topic: str, payload: bytes, *, retain: bool) -> bool:
        taken = original_publish(topic, payload, retain=retain)
        confirm_each_after_its_losses()
        return taken

    link.publish = publish  # type: ignore[method-assign]
    final = g.shutdown(START + 1)
    assert final.spool_depth == 0
    assert final.confirmed == len(set(link.seqs()))


class IngestWorkingThroughABacklog(Clock):
    """Every 2 s of its time, ingest confirms the newest message sent and not confirmed yet, but never the
    first; the link records when each message was sent."""

    def __init__(self, link: FakeLink) -> None:
        super().__init__(step=0.25)
        self.link = link
        self.confirmed: set[int] = set()
        self.last_confirmation = self.now
        self.sent_at: dict[int, list[float]] = {}
        self._seen = 0

    def __call__(self) -> float:
        now = super().__call__()
        for seq in self.link.seqs()[self._seen :]:
            self.sent_at.setdefault(seq, []).append(now)
        self._seen = len(self.link.seqs())
        waiting = sorted(set(self.link.seqs()) - self.confirmed)
        if now - self.last_confirmation >= 2.0 and len(waiting) > 1:
            self.confirmed.add(waiting[-1])
            self.link.confirm(waiting[-1])
            self.last_confirmation = now
        return now


def test_while_confirmations_come_a_drain_keeps_each_messages_backoff() -> None:
    """Ingest slow but working through a backlog: the drain's resends keep their backoff instead of going at
    the stall limit's quarter, which would fill the backlog with copies."""
    link = FakeLink()
    clock = IngestWorkingThroughABacklog(link)
    g = gateway(link, clock, drain_stall_s=4 * 4.0)  # a quarter: 4 s, shorter than the backoff's 10 s
    g.begin(first_read_ms=START)
    g.shutdown(START + 1)
    first = min(clock.sent_at)
    while_confirming = [t for t in clock.sent_at[first] if t <= clock.last_confirmation]
    assert clock.last_confirmation - clock.sent_at[first][0] > 15
    # Not every 4 s: at most sent, then after the drain's grace (5 s), then after the backoff's 10 s; and since
    # the confirmations that come take longer and longer (the newest first), the grace follows them
    # (gateway/round_trip.py) and it goes fewer times still.
    assert len(while_confirming) <= 3


def test_a_backlog_confirmed_out_of_order_later_than_the_grace_is_not_sent_again() -> None:
    """Two workers behind a backlog: the newest message is confirmed 40 s after its send (longer than the 30 s
    grace), the older ones 5 s later, from the other worker's queue. With a fixed grace every older one looked
    like a hole at 40 s and went again (the 60,000-machine load test sent 1.46 million copies so); the gateway now
    waits as long as confirmations take, so nothing goes twice."""
    link, clock = FakeLink(), Clock()
    g, sent = started(link, clock)
    *older, newest = sent
    assert len(older) > 1
    clock.advance(40.0)
    link.confirm(newest)
    g.tick()
    assert link.take_sent() == [], "a message behind another worker's backlog is no hole"
    clock.advance(5.0)
    link.confirm(*older)
    g.tick()
    assert link.take_sent() == []
    assert g.unconfirmed == 0


def test_a_hole_still_goes_again_once_it_outlasts_what_confirmations_take() -> None:
    link, clock = FakeLink(), Clock()
    g, sent = started(link, clock)
    *holes, newest = sent
    clock.advance(40.0)
    link.confirm(newest)  # one sample: 40 s, give or take 20
    g.tick()
    clock.advance(40.0 + 4 * 20.0 - 40.0 - 1.0)  # just short of mean + 4 deviations from their send
    g.tick()
    assert link.take_sent() == []
    clock.advance(2.0)
    g.tick()
    assert link.take_sent() == holes


def test_a_second_ctrl_c_abandons_the_drain_and_nothing_is_counted_for_it() -> None:
    link = FakeLink(up=False)
    g = gateway(link, Clock(step=0.01))
    g.begin(first_read_ms=START)
    g.abandon_drain()
    final = g.shutdown(START + 1)
    assert link.sent == []
    assert final.published == final.confirmed == 0
    assert final.spool_depth > 0


@pytest.mark.parametrize("confirmed", [0, 1])
def test_progress_says_what_was_sent_confirmed_and_held(confirmed: int) -> None:
    link = FakeLink()
    g, sent = started(link, Clock())
    if confirmed:
        link.confirm(*sent[:confirmed])
    g.tick()
    p = g.progress(START)
    assert (p.published, p.confirmed, p.spool_depth, p.connected) == (len(sent), confirmed, len(sent) - confirmed, True)
