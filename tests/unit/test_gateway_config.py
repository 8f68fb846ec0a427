"""The gateway configuration: the documented examples load, and every mistake is named by file, line and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ftel.contract.states import MachineType
from ftel.errors import ConfigError
from gateway.config import GatewayConfig, ModbusDriver, OpcUaDriver, Signal, parse_gateway_config
from gateway.drivers.build import machine_info
from gateway.drivers.modbus import Span, plan

DOCS = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"

GOOD = """\
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
      fault_code: {address: 2}
      units: {address: 3}
      temperature: {address: 7, type: int16, scale: 0.1}
    faults:
      codes: {11: fibre_choke, 12: feed_empty}
machines:
  - id: CARD-001
    model: FA201B
    line: line-1
    driver: {kind: modbus, host: 10.0.3.21, unit_id: 1, poll_interval_s: 1}
"""


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_gateway_config(text, source="gw.yaml")
    return str(caught.value)


def test_a_carding_machine_over_modbus_loads_with_its_defaults() -> None:
    config = parse_gateway_config(GOOD)
    machine = config.machines[0]
    assert isinstance(machine.driver, ModbusDriver)
    assert (machine.driver.port, machine.driver.timeout) == (502, 1.0)
    info = machine_info(machine, config.models["FA201B"])
    assert (info.machine_type, info.rated_speed, info.service_interval_h) == (MachineType.CARDING, 30, 160)


def test_a_wrong_type_is_named_by_its_line_and_field() -> None:
    message = error_of(GOOD.replace("unit_id: 1", "unit_id: one"))
    assert message.startswith("gw.yaml line 20, machines[0].driver.unit_id:"), message


def test_a_reason_code_the_machine_type_lacks_is_refused() -> None:
    message = error_of(GOOD.replace("feed_empty", "yarn_break"))
    assert "line 4, models.FA201B:" in message
    assert "yarn_break is not a carding reason code" in message


def test_a_machine_of_an_unknown_model_and_a_rule_on_an_unplaced_signal_are_refused() -> None:
    assert "model 'FA999' is not under models" in error_of(GOOD.replace("model: FA201B", "model: FA999"))
    rule = GOOD.replace("    faults:", "    rule: [{state: SETUP, when: {setup: true}}]\n    faults:")
    assert "the rule reads setup, which the signal map does not place" in error_of(rule)


def test_an_opcua_driver_needs_an_opcua_map_and_a_bad_endpoint_is_named() -> None:
    opcua = GOOD.replace(
        "{kind: modbus, host: 10.0.3.21, unit_id: 1, poll_interval_s: 1}", "{kind: opcua, endpoint: x}"
    )
    message = error_of(opcua)
    assert "machines[0].driver.endpoint" in message
    assert "line 20" in message


def test_broken_yaml_names_its_line() -> None:
    assert error_of("workshop: [yarn\ngateway_id: x\n").startswith("gw.yaml line 2: not valid YAML")


def test_the_register_plan_reads_each_table_in_as_few_requests_as_it_can() -> None:
    config = parse_gateway_config(GOOD)
    spans = [span for span, _ in plan(config.models["FA201B"].modbus or {})]
    assert spans == [Span(table=spans[0].table, address=0, count=8)]


def doc_examples() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)


def test_the_documented_examples_load() -> None:
    examples = [e for e in doc_examples() if e.startswith("# gateway configuration")]
    assert len(examples) >= 2
    configs: list[GatewayConfig] = [parse_gateway_config(e, source="docs/gateway.md") for e in examples]
    drivers = {type(m.driver) for c in configs for m in c.machines}
    assert {ModbusDriver, OpcUaDriver} <= drivers
    knitting = next(c for c in configs if any(isinstance(m.driver, OpcUaDriver) for m in c.machines))
    assert all(m.opcua and m.opcua.machinery for m in knitting.models.values())
    carding = next(c for c in configs if any(isinstance(m.driver, ModbusDriver) for m in c.machines))
    assert all(Signal.UNITS in (m.modbus or {}) for m in carding.models.values())
