"""A gateway built from its configuration file the way `ftel gateway --config` builds it takes the settings'
decisions: it spreads its machines' telemetry when the settings say so (it used to never spread), and its
spool-full message names a variable that exists."""

from __future__ import annotations

import logging

import pytest

from ftel.contract.states import MachineState
from ftel.settings import Settings
from gateway.cli import configured_gateway
from gateway.config import parse_gateway_config
from gateway.driver import Reading
from gateway.drivers.build import build_drivers
from gateway.runner import Gateway

START = 1_780_000_000_000
MACHINES = 12

CONFIG = """\
workshop: yarn
gateway_id: gw-yarn
models:
  FA201B:
    type: carding
    rated_speed: 30
    speed_unit: m/min
    service_interval_h: 160
    modbus:
      run: {address: 0}
machines:
""" + "".join(
    f"  - {{id: CARD-{n:03d}, model: FA201B, driver: {{kind: modbus, host: 10.0.3.21, unit_id: {n}}}}}\n"
    for n in range(1, MACHINES + 1)
)


def gateway_as_configured(settings: Settings) -> Gateway:
    config = parse_gateway_config(CONFIG)
    built = build_drivers(config, now_ms=lambda: START)
    return configured_gateway(config, settings, built.drivers, now_ms=lambda: START, durable=False)


def running_at(at_ms: int) -> Reading:
    return Reading(at_ms, MachineState.RUNNING, None, 0, 0, 30.0, 40.0, 0)


def next_samples(gateway: Gateway) -> dict[str, int]:
    """When each machine's next telemetry sample is due after one reading of every machine at START."""
    machines = list(gateway.core.trackers)
    gateway.core.observe(START, {m: [running_at(START)] for m in machines})
    return {m: gateway.core.next_sample_ms(m) for m in machines}


def test_a_configured_gateway_spreads_its_machines_telemetry_over_the_interval_by_default() -> None:
    gateway = gateway_as_configured(Settings())
    due = next_samples(gateway)
    assert len({at % 30_000 for at in due.values()}) > MACHINES // 2, due
    # Every machine is still read at each window edge, but no longer all together at each telemetry edge.
    assert gateway.core.edges(START, START + 60_000) == [START + 60_000 - START % 60_000]


def test_a_configured_gateway_samples_on_the_edge_when_the_settings_turn_the_spread_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FTEL_GATEWAY__TELEMETRY_SPREAD", "false")
    due = next_samples(gateway_as_configured(Settings()))
    assert {at % 30_000 for at in due.values()} == {0}


def test_a_full_spool_names_the_variable_that_raises_its_bound(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FTEL_GATEWAY__SPOOL_MAX_MESSAGES", "3")
    monkeypatch.setenv("FTEL_GATEWAY__DRAIN_STALL_S", "0")
    monkeypatch.setenv("FTEL_MQTT__PORT", "1")  # no broker: nothing leaves the spool
    gateway = gateway_as_configured(Settings())
    with caplog.at_level(logging.ERROR, logger="gateway.runner"):
        gateway.begin(first_read_ms=START)  # the first reading keeps every machine's meta: more than 3
        gateway.shutdown(START)
    full = [r.getMessage() for r in caplog.records if "spool full" in r.getMessage()]
    assert full, caplog.text
    assert "FTEL_GATEWAY__SPOOL_MAX_MESSAGES" in full[0]
    assert gateway.spool.max_messages == 3  # the variable the message names is the one that sets the bound
