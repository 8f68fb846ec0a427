"""Every loop that waits and tries again takes its bounds from the settings, and one that gives up says so: a
polled machine's reconnects, the broker reconnects, and the commands that write straight to InfluxDB (backfill,
settling orders, the operator page)."""

from __future__ import annotations

import pytest

from ftel.plant.layout import default_plant
from ftel.settings import InfluxSettings, MqttSettings, PollSettings, Settings
from ftel.stack.services import free_port
from ftel.storage.writer import direct_write_policy
from gateway.drivers.poll import PollTiming
from gateway.link_hub import reconnect_policy
from simulators.backfill import BackfillError, backfill

START = 1_780_000_000_000


def no_jitter() -> float:
    return 0.0


def test_a_machine_that_cannot_be_reached_is_tried_again_doubling_between_the_settings_bounds() -> None:
    defaults = PollSettings()
    policy = PollTiming(interval_s=1.0, timeout_s=1.0).reconnect
    waits = [policy.backoff(n, no_jitter) for n in range(8)]
    assert waits[0] == defaults.reconnect_min_s
    assert waits == sorted(waits)
    assert waits[-1] == defaults.reconnect_max_s
    stretched = [policy.backoff(n, lambda: 1.0) for n in range(8)]
    assert all(s > w for s, w in zip(stretched, waits, strict=True)), "machines that failed together spread out"


def test_a_gateway_that_lost_the_broker_connects_again_doubling_between_the_settings_bounds() -> None:
    policy = reconnect_policy(MqttSettings(reconnect_min_s=2, reconnect_max_s=30))
    waits = [policy.backoff(n, no_jitter) for n in range(8)]
    assert waits[0] == 2
    assert waits == sorted(waits)
    assert waits[-1] == 30
    stretched = [policy.backoff(n, lambda: 1.0) for n in range(8)]
    assert all(s > w for s, w in zip(stretched, waits, strict=True)), "a restarted broker is not met by all at once"


def test_commands_writing_straight_to_influxdb_stop_retrying_after_the_settings_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FTEL_INFLUX__WRITE_RETRY_MAX_TOTAL_S", "45")
    policy = direct_write_policy(Settings().influx)
    assert policy.max_total_s == 45.0
    assert policy.spent(started=0.0, now=40.0, delay=6.0)
    assert not policy.spent(started=0.0, now=30.0, delay=6.0)


def test_a_backfill_that_cannot_reach_influxdb_gives_up_and_says_what_to_do() -> None:
    nobody = InfluxSettings(url=f"http://127.0.0.1:{free_port()}", write_retry_max_total_s=0.5)
    with pytest.raises(BackfillError) as caught:
        backfill(
            default_plant(),
            nobody,
            start_ms=START,
            end_ms=START + 10 * 60_000,
            window_ms=60_000,
            telemetry_interval_ms=30_000,
        )
    message = str(caught.value)
    assert "cannot reach InfluxDB" in message
    assert "given up" in message
    assert "0 points were stored" in message
    assert "run the same backfill again" in message.lower()
    assert "FTEL_INFLUX__WRITE_RETRY_MAX_TOTAL_S" in message
