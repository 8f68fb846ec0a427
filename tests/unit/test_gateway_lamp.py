"""Stack-light taps (pure): blink detection and debounce over polls, the lamp convention, pulse counting, and
the timing of a Modbus RTU line."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftel.contract.states import MachineState
from gateway.config import ModelConfig, parse_gateway_config
from gateway.drivers.lamp import LampInterpreter
from gateway.drivers.rtu_timing import LineTiming, response_bytes
from gateway.lamp import Lamp, LampTiming, LampTracker, PulseCounter

POLL = 100
H = 1000  # blink_phase_max_ms


def run(tracker: LampTracker, level: Callable[[int], bool], until_ms: int, *, start_ms: int = 0) -> None:
    for at in range(start_ms, until_ms, POLL):
        tracker.observe(at, level(at))


def blinking(start: int, end: int, phase: int) -> Callable[[int], bool]:
    """On from ``start`` for ``phase``, off for ``phase``, … until ``end``."""
    return lambda at: start <= at < end and (at - start) // phase % 2 == 0


def test_a_lamp_lit_longer_than_a_blink_phase_is_steady_from_when_it_lit() -> None:
    tracker = LampTracker(LampTiming(H))
    run(tracker, lambda at: at >= 1500, 2500)
    assert tracker.changes == [(0, Lamp.OFF)]  # lit at 1500, not yet known to be steady
    assert tracker.known_until_ms == 1500
    run(tracker, lambda at: at >= 1500, 2700, start_ms=2500)
    assert tracker.changes == [(0, Lamp.OFF), (1500, Lamp.STEADY)]


def test_a_blinking_lamp_is_blinking_from_its_first_flash_until_it_stays_dark() -> None:
    tracker = LampTracker(LampTiming(H))
    run(tracker, blinking(2000, 5000, 500), 7000)
    # Its last flash ended at 4500: from there it is dark (a blink that ends is seen within one phase).
    assert tracker.changes == [(0, Lamp.OFF), (2000, Lamp.BLINKING), (4500, Lamp.OFF)]


def test_a_flicker_shorter_than_the_debounce_is_not_a_change() -> None:
    tracker = LampTracker(LampTiming(H, debounce_ms=150))
    run(tracker, lambda at: at == 1200 or at >= 3000, 5000)  # one poll's flicker at 1200, lit for good at 3000
    assert tracker.changes == [(0, Lamp.OFF), (3000, Lamp.STEADY)]  # dated at the first poll that read it


def test_a_pulse_input_counts_rising_edges() -> None:
    counter = PulseCounter()
    counts = [counter.observe(bit) for bit in (True, False, True, True, False, True)]
    assert counts == [0, 0, 1, 1, 1, 2]  # the first poll's level is not an edge


def test_rtu_line_timing_follows_the_serial_line_specification() -> None:
    assert LineTiming(9600, parity=True, stop_bits=1).gap_s == pytest.approx(3.5 * 11 / 9600)
    assert LineTiming(9600, parity=False, stop_bits=2).char_s == pytest.approx(11 / 9600)
    assert LineTiming(115_200, parity=True, stop_bits=1).gap_s == 0.00175
    assert LineTiming(19_200, parity=True, stop_bits=1).read_s(response_bytes(10, bits=False)) == pytest.approx(
        (8 + 5 + 20) * 11 / 19_200 + 2 * 3.5 * 11 / 19_200
    )
    assert response_bytes(9, bits=True) == 2


LAMP_FILE = """
workshop: yarn
gateway_id: gw-yarn
models:
  old card:
    type: carding
    rated_speed: 30
    speed_unit: m/min
    service_interval_h: 160
    modbus:
      green: {table: discrete, address: 0, type: bool}
      yellow: {table: discrete, address: 1, type: bool}
      red: {table: discrete, address: 2, type: bool}
      units: {table: discrete, address: 4, type: bool}
    lamp: {blink_phase_max_s: 1.0}
machines:
  - {id: CARD-001, model: old card, driver: {kind: modbus, host: 10.0.0.9, unit_id: 3}}
"""


def lamp_model() -> ModelConfig:
    return parse_gateway_config(LAMP_FILE).models["old card"]


def story(at: int) -> dict[str, int]:
    """Green until 3000, red blinking (500 ms phases) until 6250 — ending in a dark phase — then green again;
    a unit made every 400 ms while green."""
    green = at < 3000 or at >= 6250
    red = blinking(3000, 6250, 500)(at)
    return {"green": int(green), "yellow": 0, "red": int(red), "units": int(green and at % 400 < 200)}


def test_a_lamp_tap_tells_each_poll_at_its_own_time_with_the_lamp_convention() -> None:
    interpreter = LampInterpreter(lamp_model())
    told = []
    latest_delay = 0
    for at in range(0, 10_000, POLL):
        readings, refused = interpreter.readings(at, story(at))
        assert refused == []
        told += readings
        latest_delay = max([latest_delay, *(at - r.at_ms for r in readings)])
    assert [r.at_ms for r in told] == list(range(0, told[-1].at_ms + 1, POLL))  # every poll, in order
    changes = [(r.at_ms, r.state, r.reason) for prev, r in pairwise(told) if r.state != prev.state]
    # The fault ends in the red lamp's dark phase (it went dark at 6000): no moment of 'all dark' before green.
    assert changes == [(3000, MachineState.DOWN, "unknown_fault"), (6300, MachineState.RUNNING, None)]
    assert told[0].state is MachineState.RUNNING
    # Held back by at most the blink phase and a poll.
    assert latest_delay <= H + POLL
    assert told[-1].units_total > 0


def test_a_lamp_tap_that_stops_answering_tells_what_it_held_then_offline() -> None:
    interpreter = LampInterpreter(lamp_model())
    for at in range(0, 3400, POLL):  # red lit at 3000: steady or blinking, not yet known
        interpreter.readings(at, story(at))
    assert interpreter.held > 0
    readings = interpreter.offline(3400)
    assert [r.state for r in readings[-2:]] == [MachineState.DOWN, MachineState.OFFLINE]
    assert readings[-1].at_ms == 3400
    assert interpreter.held == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["steady", "off", "blink"]), st.integers(min_value=2, max_value=8)),
        min_size=1,
        max_size=8,
    )
)
def test_each_lamp_condition_is_told_from_its_true_start_within_a_poll(segments: list[tuple[str, int]]) -> None:
    """A lamp's story of steady, dark and blinking stretches (each long enough to be told apart): every decided
    change is dated at most one poll after the truth, and the condition between changes is the truth's."""
    phase = 300  # a blink's on and off phases: three polls each
    truth: list[tuple[int, Lamp]] = []
    at, levels = 0, []
    for kind, length in segments:
        if truth and truth[-1][1].value == {"steady": "steady", "off": "off", "blink": "blinking"}[kind]:
            continue
        truth.append((at, {"steady": Lamp.STEADY, "off": Lamp.OFF, "blink": Lamp.BLINKING}[kind]))
        span = length * 2 * phase if kind == "blink" else length * H // 2 + 2 * H
        for t in range(at, at + span, POLL):
            levels.append(kind == "steady" or (kind == "blink" and (t - at) // phase % 2 == 0))
        at += span
    tracker = LampTracker(LampTiming(H))
    for index, lit in enumerate(levels):
        tracker.observe(index * POLL, lit)
    tracker.settle()
    told = tracker.changes
    assert [c for _, c in told] == [c for _, c in truth]
    for (told_at, _), (true_at, _) in zip(told, truth, strict=True):
        index = true_at // POLL
        if index == 0 or levels[index] != levels[index - 1]:
            assert 0 <= told_at - true_at <= POLL  # the lamp changed there: seen at the next poll
        else:  # blinking from or to the level it held: seen at its first (last) change, a phase off at most
            assert abs(told_at - true_at) <= phase


@pytest.mark.parametrize(
    ("driver", "problem"),
    [
        ("{kind: modbus, host: 10.0.0.9, line: rs485-1}", "either host"),
        ("{kind: modbus, line: rs485-2, unit_id: 3}", "not under serial_lines"),
        ("{kind: modbus, line: rs485-1, unit_id: 0}", "1…247"),
    ],
)
def test_a_serial_unit_is_checked_against_its_line(driver: str, problem: str) -> None:
    text = LAMP_FILE.replace(
        "machines:\n", "serial_lines:\n  rs485-1: {device: /dev/ttyUSB0, baudrate: 9600}\nmachines:\n"
    ).replace("{kind: modbus, host: 10.0.0.9, unit_id: 3}", driver)
    with pytest.raises(Exception, match=problem):
        parse_gateway_config(text)


def test_two_machines_cannot_be_one_unit_on_one_line() -> None:
    text = LAMP_FILE.replace("machines:\n", "serial_lines:\n  rs485-1: {device: /dev/ttyUSB0}\nmachines:\n").replace(
        "  - {id: CARD-001, model: old card, driver: {kind: modbus, host: 10.0.0.9, unit_id: 3}}",
        "  - {id: CARD-001, model: old card, driver: {kind: modbus, line: rs485-1, unit_id: 3}}\n"
        "  - {id: CARD-002, model: old card, driver: {kind: modbus, line: rs485-1, unit_id: 3}}",
    )
    with pytest.raises(Exception, match="both unit 3 on line:rs485-1"):
        parse_gateway_config(text)


def test_a_rule_reads_a_lamp_by_its_conditions_only() -> None:
    rule = "    rule:\n      - {state: DOWN, when: {red: flashing}, reason: feed_empty}\n      - {state: IDLE}\n"
    with pytest.raises(Exception, match="off, steady, blinking, true, false"):
        parse_gateway_config(LAMP_FILE.replace("    lamp: {blink_phase_max_s: 1.0}\n", rule))
    assert [c.value for c in Lamp] == ["off", "steady", "blinking"]
