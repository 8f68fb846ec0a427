"""Modbus discovery's pure half (gateway/discover/modbus.py): how a register behaved, the guesses, the draft."""

from __future__ import annotations

import pytest

from gateway.config import Parity, Signal, Table, parse_gateway_config
from gateway.discover.modbus import Seen, Target, draft, guesses, judge


@pytest.mark.parametrize(
    ("values", "how"),
    [
        ([5, 5, 5], "constant"),
        ([0, 1, 1, 0], "flag"),
        ([0, 1, 1], "flag"),  # a flag that only rose is still a flag
        ([3, 4, 4, 9], "counting up"),
        ([0, 12, 0, 14], "code"),
        ([300, 20_000, 150], "changing"),
    ],
)
def test_a_register_is_judged_by_how_it_moved(values: list[int], how: str) -> None:
    assert judge(values) == how


def seen(table: Table, *reads: list[int]) -> Seen:
    return Seen(unit=3, table=table, start=100, reads=list(reads))


def test_the_draft_places_the_first_counter_flag_and_code_and_loads() -> None:
    holding = seen(Table.HOLDING, [0, 1, 7, 0], [0, 0, 7, 12], [0, 1, 9, 0])
    found = guesses([holding])
    assert {(g.signal, g.address) for g in found} == {
        (Signal.RUN, 101),
        (Signal.UNITS, 102),
        (Signal.FAULT_CODE, 103),
    }
    text = draft(Target(host="10.0.0.5"), {3: [holding]}, workshop="yarn", gateway_id="gw-yarn", command="test")
    config = parse_gateway_config(text)
    assert config.machines[0].driver.kind == "modbus"
    assert "# check" in text


def test_a_unit_with_only_bits_drafts_a_lamp_tap_on_a_serial_line() -> None:
    inputs = seen(Table.DISCRETE, [1, 0, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0])
    target = Target.parse("/dev/ttyUSB0", baudrate=9600, parity=Parity.NONE, stop_bits=2)
    text = draft(target, {3: [inputs]}, workshop="yarn", gateway_id="gw-yarn", command="test")
    config = parse_gateway_config(text)
    assert config.models["unit 3 (draft)"].lamps == [Signal.GREEN, Signal.YELLOW, Signal.RED]
    assert config.serial_lines["line-1"].baudrate == 9600


def test_a_unit_that_never_answered_is_left_out() -> None:
    answered = seen(Table.HOLDING, [0, 1], [1, 1])
    silent = Seen(unit=4, table=Table.HOLDING, start=0, reads=[None, None], problem="no answer")
    text = draft(Target(host="10.0.0.5"), {3: [answered], 4: [silent]}, workshop="w", gateway_id="gw", command="t")
    assert [m.id for m in parse_gateway_config(text).machines] == ["UNIT-003"]


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("10.0.0.5", "10.0.0.5", 502), ("10.0.0.5:5020", "10.0.0.5", 5020), ("tcp://gw.local:503/", "gw.local", 503)],
)
def test_a_tcp_target_is_an_address(text: str, host: str, port: int) -> None:
    target = Target.parse(text)
    assert (target.host, target.port, target.line) == (host, port, None)
