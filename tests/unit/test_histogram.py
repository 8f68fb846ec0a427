from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftel.histogram import BOUNDS_MS, Histogram


@given(st.lists(st.integers(0, 700_000), min_size=1, max_size=200), st.sampled_from([50.0, 95.0, 99.0]))
def test_a_percentile_is_the_bound_of_the_bucket_that_holds_it(values: list[int], p: float) -> None:
    h = Histogram()
    for v in values:
        h.add(v)
    exact = sorted(values)[max(0, -(-len(values) * int(p) // 100) - 1)]
    bound = h.percentile(p)
    assert bound is not None
    # The true percentile lies in the bucket the answer bounds (or beyond the last bound).
    assert exact <= bound or bound == BOUNDS_MS[-1]
    lower = max((b for b in BOUNDS_MS if b < bound), default=-1)
    assert exact > lower


def test_merged_histograms_count_everything_once() -> None:
    a, b = Histogram(), Histogram()
    for v in (1, 30, 900):
        a.add(v)
    for v in (2, 2_000_000):
        b.add(v)
    a.merge(b)
    assert a.total == 5
    assert a.percentile(100) == BOUNDS_MS[-1]
    assert Histogram().percentile(50) is None


def test_over_a_bound_counts_exactly_the_values_above_it() -> None:
    histogram = Histogram()
    for ms in (1_999, 2_000, 2_001, 4_999, 700_000):
        histogram.add(ms)
    assert histogram.over(2_000) == 3
    assert histogram.over(600_000) == 1
    with pytest.raises(ValueError, match="not a bucket bound"):
        histogram.over(1_500)


def test_over_about_a_value_counts_above_the_bound_at_or_below_it() -> None:
    histogram = Histogram()
    for ms in (1_999, 2_000, 2_001, 4_999, 700_000):
        histogram.add(ms)
    assert histogram.over_about(2_000) == 3  # a bound: exact
    assert histogram.over_about(2_500) == 3  # rounded down to 2,000
    assert histogram.over_about(1_000_000) == 1  # beyond the last bound: the last bucket
    assert histogram.over_about(0) == histogram.over(1)  # below the first bound: the first one
