"""The stop event a signal handler sets (ftel/signals.py): never a lock, so a handler that runs while its own
thread waits on the same event cannot hang the process."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from ftel.signals import SignalEvent, stop_on_signals


@pytest.fixture
def event() -> Iterator[SignalEvent]:
    made = SignalEvent()
    yield made
    made.close()


def test_set_takes_no_lock_so_a_handler_may_set_it_while_its_thread_holds_the_event_s_lock(event: SignalEvent) -> None:
    # Where a handler can run inside Event.wait: the event's lock held by the very thread the handler runs in.
    # A threading.Event's set would wait here for ever.
    with event._cond:  # type: ignore[attr-defined]  # noqa: SLF001 - the lock Event.wait holds is the point
        event.set()
    assert event.is_set()
    assert event.wait(0)


def test_a_signal_during_a_wait_sets_it_and_ends_the_wait(event: SignalEvent) -> None:
    previous = signal.signal(signal.SIGALRM, lambda *_: event.set())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        assert event.wait(timeout=60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_every_waiting_thread_wakes_when_another_sets_it(event: SignalEvent) -> None:
    woke: list[bool] = []
    waiters = [threading.Thread(target=lambda: woke.append(event.wait(60))) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    assert not event.wait(0.01)
    event.set()
    event.set()  # twice is once
    for waiter in waiters:
        waiter.join()
    assert woke == [True, True, True]


def test_clear_makes_it_unset_again(event: SignalEvent) -> None:
    event.set()
    event.clear()
    assert not event.is_set()
    assert not event.wait(0.01)
    event.set()
    assert event.wait(0)


def test_stop_on_signals_is_set_by_sigterm() -> None:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop = stop_on_signals()
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(60)
        stop.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
