"""The one retry policy (ftel/retry.py): exponential with jitter, a cap per delay, Retry-After honoured, a cap on
the total time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftel.retry import RetryPolicy, parse_retry_after


@given(attempt=st.integers(0, 60), draw=st.floats(0, 1))
def test_each_delay_grows_to_its_cap_stretched_by_at_most_the_jitter(attempt: int, draw: float) -> None:
    policy = RetryPolicy(initial_s=0.5, max_s=30.0, exponential_base=2.0, jitter=0.2)
    base = min(30.0, 0.5 * 2.0**attempt)
    assert base <= policy.backoff(attempt, lambda: draw) <= base * 1.2


def test_what_the_other_side_asks_for_is_waited_at_least() -> None:
    policy = RetryPolicy(initial_s=0.2, max_s=10.0, jitter=0.0)
    assert policy.delay(0, retry_after_s=7.0) == 7.0
    assert policy.delay(0, retry_after_s=None) == 0.2
    assert policy.delay(10, retry_after_s=1.0) == 10.0


def test_a_capped_policy_says_when_the_next_wait_would_pass_its_total() -> None:
    policy = RetryPolicy(max_total_s=20.0)
    assert not policy.spent(started=100.0, now=110.0, delay=9.0)
    assert policy.spent(started=100.0, now=110.0, delay=11.0)
    assert not RetryPolicy().spent(started=0.0, now=1e9, delay=1e9)


@pytest.mark.parametrize(("header", "seconds"), [("5", 5.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), (None, None)])
def test_retry_after_is_read_in_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds
