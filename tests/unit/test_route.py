from __future__ import annotations

import json

from ingest.route import Accepted, Rejected, TimeLimits, route
from tests.unit.test_contract import GOOD, TOPIC

LIMITS = TimeLimits(max_future_skew_ms=300_000, max_age_ms=86_400_000)
NOW = GOOD["ts"]


def test_a_good_event_becomes_one_machine_state_line() -> None:
    outcome = route(TOPIC, json.dumps(GOOD).encode(), received_ms=NOW, limits=LIMITS)  # type: ignore[arg-type]
    assert isinstance(outcome, Accepted)
    assert outcome.lines[0].startswith("machine_state,machine_id=KNIT-001,machine_type=knitting,site=qinghe")


def test_timestamps_far_in_the_future_or_past_are_rejected() -> None:
    for ts, reason in ((NOW + 3_600_000, "in the future"), (NOW - 2 * 86_400_000, "older than")):
        outcome = route(
            TOPIC,
            json.dumps({**GOOD, "ts": ts}).encode(),
            received_ms=NOW,  # type: ignore[arg-type]
            limits=LIMITS,
        )
        assert isinstance(outcome, Rejected)
        assert reason in outcome.reason
