"""The gateway's pure signal core: registers decoded as vendors lay them out, counters that wrap or reset
counted once, the state rule (plain flags and the OPC 40001-1 building blocks), refusals counted."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftel.contract.states import MachineState, MachineType
from gateway.config import DataType, FaultTable, ModelConfig, OpcUaMap, Order, Register, RuleEntry, Signal
from gateway.counters import CounterSpec, Step, advance
from gateway.registers import decode, decode_words
from gateway.signals import COUNTER_JUMP, NO_STATE, UNKNOWN_FAULT_CODE, SignalInterpreter

# -- registers ------------------------------------------------------------------------------------------------


def words_of(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def test_a_float_in_abcd_order_and_a_counter_in_cdab_order_decode_as_the_vendor_wrote_them() -> None:
    assert (
        decode_words(words_of(struct.pack(">f", 27.5)), DataType.FLOAT32, word_order=Order.BIG, byte_order=Order.BIG)
        == 27.5
    )
    high, low = words_of(struct.pack(">I", 123_456))
    assert decode_words([low, high], DataType.UINT32, word_order=Order.LITTLE, byte_order=Order.BIG) == 123_456
    assert decode_words([0xFF9C], DataType.INT16, word_order=Order.BIG, byte_order=Order.BIG) == -100
    # Bytes swapped inside each register ("BADC").
    swapped = [int.from_bytes(struct.pack(">H", w)[::-1], "big") for w in words_of(struct.pack(">i", -7))]
    assert decode_words(swapped, DataType.INT32, word_order=Order.BIG, byte_order=Order.LITTLE) == -7


def test_a_flag_is_one_bit_of_its_register() -> None:
    assert decode(Register(address=1, bit=1), [0b10]) == 1
    assert decode(Register(address=1, bit=0), [0b10]) == 0


FORMATS = {
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT64: ">d",
}


@given(
    data_type=st.sampled_from(sorted(FORMATS)),
    word_order=st.sampled_from(list(Order)),
    value=st.integers(-(2**31), 2**31 - 1),
)
def test_wide_values_round_trip_in_either_word_order(data_type: DataType, word_order: Order, value: int) -> None:
    if data_type in (DataType.UINT32, DataType.UINT64):
        value = abs(value)
    words = words_of(struct.pack(FORMATS[data_type], float(value) if data_type is DataType.FLOAT64 else value))
    if word_order is Order.LITTLE:
        words.reverse()
    assert decode_words(words, data_type, word_order=word_order, byte_order=Order.BIG) == value


# -- counters -------------------------------------------------------------------------------------------------

SIXTEEN = CounterSpec(bits=16, max_step=1000)


@given(start=st.integers(0, 65_535), steps=st.lists(st.integers(0, 1000), max_size=60))
def test_a_16_bit_counter_that_wraps_counts_every_unit_once(start: int, steps: list[int]) -> None:
    count, _ = advance(None, start, SIXTEEN)
    raw = start
    for step in steps:
        raw = (raw + step) % 65_536
        count, kind = advance(count, raw, SIXTEEN)
        assert kind in (Step.UP, Step.WRAP)
    assert count.total == sum(steps)


# A restart from within max_step of the wrap cannot be told from a wrap (docs/gateway.md): from below it, it can.
@given(before=st.integers(1001, 65_536 - SIXTEEN.max_step - 1), after=st.integers(0, 1000), made=st.integers(0, 50))
def test_a_controller_restart_counts_what_it_made_since_and_never_goes_back(before: int, after: int, made: int) -> None:
    count, _ = advance(None, before - made, SIXTEEN)
    count, _ = advance(count, before, SIXTEEN)
    count, kind = advance(count, after, SIXTEEN)
    assert kind is Step.RESET
    assert count.total == made + after


def test_after_a_lost_connection_a_smaller_value_is_a_restart_not_a_wrap() -> None:
    count, _ = advance(None, 65_530, SIXTEEN)
    count, kind = advance(count, 2, SIXTEEN, reconnected=True)
    assert (kind, count.total) == (Step.RESET, 2)
    count, kind = advance(advance(None, 65_530, SIXTEEN)[0], 2, SIXTEEN)
    assert (kind, count.total) == (Step.WRAP, 8)


def test_an_impossible_jump_counts_nothing() -> None:
    count, _ = advance(None, 10, SIXTEEN)
    count, kind = advance(count, 40_000, SIXTEEN)
    assert (kind, count.total) == (Step.JUMP, 0)
    count, kind = advance(count, 40_001, SIXTEEN)
    assert (kind, count.total) == (Step.UP, 1)


# -- the state rule -------------------------------------------------------------------------------------------

CARD_MAP = {
    Signal.RUN: Register(address=0),
    Signal.SETUP: Register(address=1, bit=0),
    Signal.MAINTENANCE: Register(address=1, bit=1),
    Signal.FAULT_CODE: Register(address=2),
    Signal.UNITS: Register(address=3),
    Signal.DEFECTS: Register(address=4),
    Signal.TEMPERATURE: Register(address=7, type=DataType.INT16, scale=0.1, min=-40, max=250),
}
CARD = ModelConfig(
    type=MachineType.CARDING,
    rated_speed=30,
    speed_unit="m/min",
    service_interval_h=160,
    modbus=CARD_MAP,
    faults=FaultTable(codes={11: "fibre_choke", 12: "feed_empty"}),
)
KNIT = ModelConfig(
    type=MachineType.KNITTING,
    rated_speed=1,
    speed_unit="m/s",
    service_interval_h=200,
    opcua=OpcUaMap(machinery=True, signals={}),
    faults=FaultTable(codes={101: "yarn_break"}),
)


def card(**values: int) -> dict[str, int]:
    return {
        "run": 0,
        "setup": 0,
        "maintenance": 0,
        "fault_code": 0,
        "units": 0,
        "defects": 0,
        "temperature": 300,
    } | values


@pytest.mark.parametrize(
    ("sample", "state", "reason"),
    [
        (card(run=1), MachineState.RUNNING, None),
        (card(), MachineState.IDLE, None),
        (card(setup=1), MachineState.SETUP, None),
        (card(maintenance=1, setup=1, fault_code=11), MachineState.MAINTENANCE, None),
        (card(run=1, fault_code=12), MachineState.DOWN, "feed_empty"),
    ],
)
def test_the_default_rule_reads_the_plain_flags(
    sample: dict[str, int], state: MachineState, reason: str | None
) -> None:
    reading, refused = SignalInterpreter(CARD).interpret(1000, sample)
    assert reading is not None
    assert (reading.state, reading.reason, refused) == (state, reason, [])


@pytest.mark.parametrize(
    ("item", "mode", "code", "state", "reason"),
    [
        ("Executing", "Processing", 0, MachineState.RUNNING, None),
        ("NotExecuting", "Processing", 0, MachineState.IDLE, None),
        ("NotExecuting", "Setup", 0, MachineState.SETUP, None),
        ("Executing", "Setup", 0, MachineState.SETUP, None),
        ("OutOfService", "Maintenance", 0, MachineState.MAINTENANCE, None),
        ("OutOfService", "Processing", 101, MachineState.DOWN, "yarn_break"),
        ("NotAvailable", "None", 0, MachineState.OFFLINE, None),
    ],
)
def test_a_standard_machine_needs_no_hand_made_map(
    item: str, mode: str, code: int, state: MachineState, reason: str | None
) -> None:
    reading, _ = SignalInterpreter(KNIT).interpret(
        1000, {"item_state": item, "operation_mode": mode, "fault_code": code}
    )
    assert reading is not None
    assert (reading.state, reading.reason) == (state, reason)


def test_an_unknown_fault_code_is_counted_and_down_with_the_models_unknown_reason() -> None:
    interpreter = SignalInterpreter(CARD)
    interpreter.interpret(1000, card(run=1))
    reading, refused = interpreter.interpret(2000, card(fault_code=77))
    assert reading is not None
    assert (reading.state, reading.reason, refused) == (MachineState.DOWN, "unknown_fault", [UNKNOWN_FAULT_CODE])
    named = CARD.model_copy(update={"faults": FaultTable(codes={11: "fibre_choke"}, unknown="motor_overload")})
    reading, refused = SignalInterpreter(named).interpret(1000, card(fault_code=77))
    assert reading is not None
    assert (reading.state, reading.reason, refused) == (MachineState.DOWN, "motor_overload", [UNKNOWN_FAULT_CODE])
    keeping = CARD.model_copy(update={"faults": FaultTable(codes={11: "fibre_choke"}, unknown=None)})
    interpreter = SignalInterpreter(keeping)
    interpreter.interpret(1000, card(run=1))
    reading, refused = interpreter.interpret(2000, card(fault_code=77))
    assert reading is not None
    assert (reading.state, refused) == (MachineState.RUNNING, [UNKNOWN_FAULT_CODE])


def test_a_first_sample_that_gives_no_state_gives_no_reading() -> None:
    keeping = CARD.model_copy(update={"faults": FaultTable(codes={11: "fibre_choke"}, unknown=None)})
    reading, refused = SignalInterpreter(keeping).interpret(1000, card(fault_code=77))
    assert (reading, refused) == (None, [UNKNOWN_FAULT_CODE])
    down_without_code = KNIT.model_copy(update={"faults": KNIT.faults.model_copy(update={"unknown": None})})
    reading, refused = SignalInterpreter(down_without_code).interpret(
        1000, {"item_state": "OutOfService", "fault_code": 0}
    )
    assert (reading, refused) == (None, [UNKNOWN_FAULT_CODE])


def test_a_value_out_of_its_range_is_refused_and_the_last_good_one_kept() -> None:
    interpreter = SignalInterpreter(CARD)
    interpreter.interpret(1000, card(run=1, temperature=412))
    reading, refused = interpreter.interpret(2000, card(run=1, temperature=9990))
    assert reading is not None
    assert reading.temperature == pytest.approx(41.2)
    assert refused == ["out_of_range:temperature"]


def test_a_rule_of_the_models_own_reads_a_state_code() -> None:
    model = CARD.model_copy(
        update={
            "modbus": {**CARD_MAP, Signal.STATE_CODE: Register(address=9)},
            "rule": [
                RuleEntry(state=MachineState.DOWN, when={"state_code": [4, 5]}, reason="feed_empty"),
                RuleEntry(state=MachineState.RUNNING, when={"state_code": 2}),
            ],
        }
    )
    interpreter = SignalInterpreter(model)
    assert interpreter.interpret(1, card(state_code=2))[0].state is MachineState.RUNNING  # type: ignore[union-attr]
    reading = interpreter.interpret(2, card(state_code=5))[0]
    assert reading is not None
    assert (reading.state, reading.reason) == (MachineState.DOWN, "feed_empty")
    assert interpreter.interpret(3, card(state_code=0))[0].state is MachineState.IDLE  # type: ignore[union-attr]


def test_counters_start_at_zero_wrap_and_never_show_more_defects_than_units_made() -> None:
    interpreter = SignalInterpreter(CARD)
    readings = [
        interpreter.interpret(t, card(run=1, units=u, defects=d))[0]
        for t, (u, d) in enumerate([(65_534, 10), (65_535, 11), (1, 12), (1, 14), (2, 14)])
    ]
    assert [(r.units_total, r.defects_total) for r in readings if r] == [(0, 0), (1, 1), (3, 2), (3, 2), (4, 3)]


def test_an_impossible_counter_jump_is_refused() -> None:
    interpreter = SignalInterpreter(CARD)
    interpreter.interpret(1, card(units=5))
    reading, refused = interpreter.interpret(2, card(units=50_000))
    assert reading is not None
    assert (reading.units_total, refused) == (0, [f"{COUNTER_JUMP}:units"])


def test_going_offline_keeps_the_counters() -> None:
    interpreter = SignalInterpreter(CARD)
    interpreter.interpret(1, card(run=1, units=5))
    interpreter.interpret(2, card(run=1, units=7))
    offline = interpreter.went_offline(3)
    assert (offline.state, offline.units_total) == (MachineState.OFFLINE, 2)
    assert NO_STATE != UNKNOWN_FAULT_CODE
