"""The supervisor's pure parts: how long a dead worker waits, what its health says while it is down, how a
child's end is told, and how Ctrl-C is counted."""

from __future__ import annotations

import os
import signal

from ftel.children import Interrupts, describe_exit
from ftel.settings import Settings
from ftel.storage.writer import RetryPolicy
from ingest.supervisor import HEALTH_TAIL_LINES, RestartBackoff, down_health, restart_backoff


def no_jitter() -> float:
    return 0.0


def test_a_worker_dying_again_and_again_waits_twice_as_long_each_time_up_to_the_cap() -> None:
    backoff = RestartBackoff(RetryPolicy(initial_s=1.0, max_s=20.0), reset_after_s=60.0)
    delays = [backoff.after_death(lived_s=0.5, draw=no_jitter) for _ in range(7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    assert backoff.deaths_in_a_row == 7


def test_a_worker_that_lived_a_while_before_it_died_starts_again_at_once() -> None:
    backoff = RestartBackoff(RetryPolicy(initial_s=1.0, max_s=20.0), reset_after_s=60.0)
    for _ in range(4):
        backoff.after_death(lived_s=1.0, draw=no_jitter)
    assert backoff.after_death(lived_s=60.0, draw=no_jitter) == 1.0
    assert backoff.deaths_in_a_row == 1
    assert backoff.after_death(lived_s=59.9, draw=no_jitter) == 2.0


def test_jitter_only_stretches_the_wait() -> None:
    backoff = RestartBackoff(RetryPolicy(initial_s=1.0, max_s=20.0, jitter=0.2), reset_after_s=60.0)
    assert backoff.after_death(lived_s=0.0, draw=lambda: 1.0) == 1.2


def test_the_backoff_comes_from_the_settings() -> None:
    settings = Settings()
    i = settings.ingest
    backoff = restart_backoff(settings)
    assert (backoff.policy.initial_s, backoff.policy.max_s) == (i.restart_initial_s, i.restart_max_s)
    assert backoff.reset_after_s == i.restart_reset_after_s


def test_the_health_of_a_worker_that_is_down_says_why_and_when_it_starts_again() -> None:
    tail = [f"line {n}" for n in range(12)]
    health = down_health(
        "ingest-2",
        reason="exited with code 1 after 0.4 s",
        tail=tail,
        deaths_in_a_row=3,
        next_start_in_s=4.123,
        since_ms=1_000,
        ts=2_000,
    )
    assert health == {
        "worker": "ingest-2",
        "state": "restarting",
        "reason": "exited with code 1 after 0.4 s",
        "stderr_tail": tail[-HEALTH_TAIL_LINES:],
        "deaths_in_a_row": 3,
        "next_start_in_s": 4.1,
        "since_ms": 1_000,
        "ts": 2_000,
    }


def test_a_child_s_end_is_told_by_its_code_or_its_signal() -> None:
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(2) == "exited with code 2"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-signal.SIGSEGV) == "killed by SIGSEGV"


def test_the_first_ctrl_c_asks_for_the_ordered_stop_and_the_second_for_a_stop_at_once() -> None:
    interrupts = Interrupts()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupts.stop.is_set()
        assert not interrupts.abort.is_set()
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupts.abort.is_set()
    finally:
        interrupts.restore()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_asks_for_the_ordered_stop_too() -> None:
    interrupts = Interrupts()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert interrupts.stop.is_set()
        assert not interrupts.abort.is_set()
    finally:
        interrupts.restore()
