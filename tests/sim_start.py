"""Where a test's simulated plant starts: pinned, so every run of the suite simulates the same history.

Each machine seeds its random life with the start, and shift handovers fall at fixed hours of the day, so a
start taken from the wall clock made the suite pass or fail with the hour it ran at. Tests that simulate start
at a fixed hour of a fixed day in the past instead; ``FTEL_TEST_START_HOUR`` (0-23) picks another hour of that
day, so the whole suite can be swept over the 24 hours:

    for h in $(seq 0 23); do FTEL_TEST_START_HOUR=$h .venv/bin/pytest -q tests/integration/test_alerts_faults.py; done

Every call prints the start and how to replay it (pytest shows it with a failing test's output).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

ENV = "FTEL_TEST_START_HOUR"
DEFAULT_HOUR = 3
HOUR_MS = 3_600_000
# 2026-11-16 00:00 UTC: a fixed day, far enough in the past that any run of a day or less stays in the past
# (the simulated clock never runs ahead of the wall clock, so a run into the future would crawl in real time).
DAY_MS = 1_794_787_200_000


def start_hour() -> int:
    text = os.environ.get(ENV, str(DEFAULT_HOUR))
    try:
        hour = int(text)
    except ValueError:
        hour = -1
    if not 0 <= hour <= 23:
        raise ValueError(f"{ENV} must be an hour of the day, 0 to 23, not {text!r}")
    return hour


def start_ms(*, span_ms: int) -> int:
    """The pinned start of a simulated run that lasts ``span_ms``."""
    hour = start_hour()
    start = DAY_MS + hour * HOUR_MS
    when = datetime.fromtimestamp(start / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"simulated start {when} ({start}); replay with {ENV}={hour}")
    if start + span_ms > time.time() * 1000:
        raise RuntimeError(f"a run from {when} lasting {span_ms} ms would reach the future: is the clock right?")
    return start
