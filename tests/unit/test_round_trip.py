"""The gateway's estimate of how long a confirmation takes (RFC 6298's smoothed mean and deviation)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.round_trip import RoundTrip


def test_before_any_sample_the_grace_is_the_floor() -> None:
    assert RoundTrip().grace_s(30.0, 600.0) == 30.0


def test_the_first_sample_sets_the_mean_and_half_of_it_as_the_deviation() -> None:
    trip = RoundTrip()
    trip.sample(40.0)
    assert (trip.mean_s, trip.deviation_s) == (40.0, 20.0)
    assert trip.grace_s(30.0, 600.0) == 40.0 + 4 * 20.0


def test_steady_samples_narrow_the_grace_to_the_floor_and_a_slower_ingest_widens_it() -> None:
    trip = RoundTrip()
    for _ in range(100):
        trip.sample(2.0)
    assert trip.mean_s == pytest.approx(2.0)
    assert trip.deviation_s < 0.01
    assert trip.grace_s(30.0, 600.0) == 30.0
    for _ in range(10):
        trip.sample(60.0)
    assert trip.grace_s(30.0, 600.0) > 60.0


def test_the_grace_is_capped() -> None:
    trip = RoundTrip()
    trip.sample(3_600.0)
    assert trip.grace_s(30.0, 600.0) == 600.0


@given(st.lists(st.floats(min_value=0.0, max_value=10_000.0), min_size=1, max_size=200))
def test_the_mean_stays_within_the_samples_and_the_grace_within_its_bounds(samples: list[float]) -> None:
    trip = RoundTrip()
    for seconds in samples:
        trip.sample(seconds)
    assert trip.mean_s is not None
    assert min(samples) - 1e-6 <= trip.mean_s <= max(samples) + 1e-6
    assert trip.deviation_s >= 0.0
    assert 30.0 <= trip.grace_s(30.0, 600.0) <= 600.0
