"""A controller's signals → a machine reading (pure): scale, range checks, the state rule, the fault table,
counters that wrap or reset, run hours since service.

A driver reads raw values (``Sample``: signal name → number, or a Machinery state name) and hands them to the
machine's ``SignalInterpreter``, which keeps what it needs between samples (the counters, the last accepted
values, the last state) and returns a ``Reading`` for the gateway's core plus what it refused, by reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from ftel.contract import limits
from ftel.contract.states import MachineState
from gateway.config import (
    CONTRACT_RANGES,
    COUNTERS,
    ITEM_STATE,
    OPERATION_MODE,
    FaultTable,
    Match,
    ModelConfig,
    Node,
    Register,
    RuleEntry,
    Signal,
)
from gateway.counters import Count, CounterSpec, Step, advance
from gateway.driver import Reading
from gateway.lamp import Lamp, lamp_rule
from gateway.registers import counter_bits

RawValue = int | float | str
Sample = Mapping[str, RawValue]

# Refusal reasons (counted per machine; a driver exposes them through ``refusals()``).
OUT_OF_RANGE = "out_of_range"  # out_of_range:<signal>
UNKNOWN_FAULT_CODE = "unknown_fault_code"
COUNTER_JUMP = "counter_jump"  # counter_jump:<signal>
NO_STATE = "no_state"  # the rule gave no state the contract allows (DOWN without a reason), last state kept

OPC_UA_COUNTER_BITS = 32  # UInt32, the usual type of an OPC UA counter variable


def default_rule(model: ModelConfig) -> list[RuleEntry]:
    """The rule when the model gives none: OPC 40001-1 building blocks if read, the lamp convention for a
    stack-light tap, else the plain flags."""
    if model.opcua is not None and model.opcua.machinery:
        return [
            RuleEntry(state=MachineState.OFFLINE, when={ITEM_STATE: "NotAvailable"}),
            RuleEntry(state=MachineState.MAINTENANCE, when={OPERATION_MODE: "Maintenance"}),
            RuleEntry(state=MachineState.SETUP, when={OPERATION_MODE: "Setup"}),
            RuleEntry(state=MachineState.DOWN, when={ITEM_STATE: "OutOfService"}),
            RuleEntry(state=MachineState.RUNNING, when={ITEM_STATE: "Executing"}),
            RuleEntry(state=MachineState.IDLE),
        ]
    if model.lamps:
        return lamp_rule(model)
    placed = set(model.modbus or {}) | set(model.opcua.signals if model.opcua else {})
    rule = [
        RuleEntry(state=MachineState.MAINTENANCE, when={Signal.MAINTENANCE.value: True}),
        RuleEntry(state=MachineState.SETUP, when={Signal.SETUP.value: True}),
        RuleEntry(state=MachineState.DOWN, when={Signal.FAULT_CODE.value: True}),
        RuleEntry(state=MachineState.RUNNING, when={Signal.RUN.value: True}),
    ]
    return [*(e for e in rule if Signal(next(iter(e.when))) in placed), RuleEntry(state=MachineState.IDLE)]


def matches(value: RawValue | None, expected: Match) -> bool:
    if value is None:
        return False
    if isinstance(expected, bool):
        return (value not in (0, "", "0", Lamp.OFF)) is expected
    if isinstance(expected, list):
        return value in expected
    return value == expected


def choose(rule: list[RuleEntry], values: Mapping[str, RawValue]) -> RuleEntry | None:
    """The first entry of ``rule`` whose conditions all hold."""
    for entry in rule:
        if all(matches(values.get(name), expected) for name, expected in entry.when.items()):
            return entry
    return None


def fault_reason(faults: FaultTable, code: RawValue | None) -> tuple[str | None, bool]:
    """(reason, known) for a fault code: the table's reason, else ``faults.unknown`` (and known False)."""
    if isinstance(code, float) and code.is_integer():
        code = int(code)
    if isinstance(code, int) and code in faults.codes:
        return faults.codes[code], True
    return faults.unknown, False


@dataclass(slots=True)
class SignalInterpreter:
    """One machine's signals over time. ``interpret`` is called with each sample, in time order."""

    model: ModelConfig
    rule: list[RuleEntry] = field(default_factory=list)
    counters: dict[Signal, Count] = field(default_factory=dict)
    accepted: dict[str, RawValue] = field(default_factory=dict)  # the last value of each signal that passed
    last: Reading | None = None
    service_ms: int = 0
    defects_shown: int = 0  # defects never run ahead of units (a window cannot have more defects than units)

    def __post_init__(self) -> None:
        if not self.rule:
            self.rule = self.model.rule or default_rule(self.model)

    def _spec(self, name: Signal) -> Register | Node | None:
        if self.model.modbus is not None:
            return self.model.modbus.get(name)
        return self.model.opcua.signals.get(name) if self.model.opcua else None

    def _value(self, name: str, raw: RawValue, refused: list[str]) -> RawValue | None:
        """``raw`` scaled and checked against its declared range and the contract's, or None (refused)."""
        if isinstance(raw, str) or name in (ITEM_STATE, OPERATION_MODE):
            return raw
        signal = Signal(name)
        spec = self._spec(signal)
        value: int | float = raw
        if spec is not None and (spec.scale != 1.0 or spec.offset != 0.0):
            value = raw * spec.scale + spec.offset
        low, high = CONTRACT_RANGES.get(signal, (float("-inf"), float("inf")))
        if spec is not None:
            low = max(low, spec.min) if spec.min is not None else low
            high = min(high, spec.max) if spec.max is not None else high
        if math.isnan(value) or not low <= value <= high:
            refused.append(f"{OUT_OF_RANGE}:{name}")
            return None
        return value

    def _count(self, signal: Signal, raw: RawValue | None, refused: list[str], reconnected: bool) -> int:
        previous = self.counters.get(signal)
        if raw is None or isinstance(raw, str):
            return previous.total if previous else 0
        spec = self._spec(signal)
        bits = counter_bits(spec) if isinstance(spec, Register) else (spec.wrap_bits if spec else None)
        counter = CounterSpec(bits or OPC_UA_COUNTER_BITS, spec.max_step if spec else 10_000)
        count, step = advance(previous, int(raw), counter, reconnected=reconnected)
        if step is Step.JUMP:
            refused.append(f"{COUNTER_JUMP}:{signal.value}")
        self.counters[signal] = count
        return count.total

    def interpret(self, at_ms: int, sample: Sample, *, reconnected: bool = False) -> tuple[Reading | None, list[str]]:
        """The reading that ``sample`` (read at ``at_ms``) gives, and what was refused in it. No reading when no
        state can be told yet (a first sample that the rule cannot place)."""
        refused: list[str] = []
        values: dict[str, RawValue] = {}
        for name, raw in sample.items():
            value = self._value(name, raw, refused)
            if value is not None:
                values[name] = value
                if name not in {c.value for c in COUNTERS}:
                    self.accepted[name] = value
        state, reason = self._state(values, refused)
        units = self._count(Signal.UNITS, values.get(Signal.UNITS), refused, reconnected)
        defects = self._count(Signal.DEFECTS, values.get(Signal.DEFECTS), refused, reconnected)
        previous_units = self.last.units_total if self.last else units
        self.defects_shown = min(defects, self.defects_shown + max(0, units - previous_units))
        if state is None:
            return None, refused
        reading = Reading(
            at_ms=at_ms,
            state=state,
            reason=reason,
            units_total=units,
            defects_total=self.defects_shown,
            speed=float(_number(self.accepted.get(Signal.SPEED.value), 0.0)),
            temperature=float(_number(self.accepted.get(Signal.TEMPERATURE.value), 0.0)),
            run_ms_since_service=self._service(at_ms, state),
            program=program_text(self.accepted.get(Signal.PROGRAM.value)),
        )
        self.last = reading
        return reading, refused

    def readings(self, at_ms: int, sample: Sample, *, reconnected: bool = False) -> tuple[list[Reading], list[str]]:
        """``interpret`` as a poll driver takes it (gateway/drivers/poll.py Interpreter)."""
        reading, refused = self.interpret(at_ms, sample, reconnected=reconnected)
        return ([reading] if reading is not None else []), refused

    def offline(self, at_ms: int) -> list[Reading]:
        return [self.went_offline(at_ms)]

    def went_offline(self, at_ms: int) -> Reading:
        """The machine stopped answering at ``at_ms``: OFFLINE, with the counters as last read."""
        last = self.last
        reading = Reading(
            at_ms=at_ms,
            state=MachineState.OFFLINE,
            reason=None,
            units_total=last.units_total if last else 0,
            defects_total=last.defects_total if last else 0,
            speed=0.0,
            temperature=last.temperature if last else 0.0,
            run_ms_since_service=last.run_ms_since_service if last else 0,
        )
        self.last = reading
        return reading

    def _state(self, values: Mapping[str, RawValue], refused: list[str]) -> tuple[MachineState | None, str | None]:
        entry = choose(self.rule, values)
        if entry is None:
            state, reason = MachineState.IDLE, None
        elif entry.state is not MachineState.DOWN:
            state, reason = entry.state, None
        elif entry.reason is not None:
            state, reason = MachineState.DOWN, entry.reason
        else:
            code = values.get(Signal.FAULT_CODE.value)
            found, known = fault_reason(self.model.faults, code)
            if not known:
                refused.append(UNKNOWN_FAULT_CODE)
            state, reason = MachineState.DOWN, found
        if state is MachineState.DOWN and reason is None:
            if UNKNOWN_FAULT_CODE not in refused:
                refused.append(NO_STATE)
            # The contract has no DOWN without a reason: keep what the machine was (or wait for a better sample).
            return (self.last.state, self.last.reason) if self.last else (None, None)
        return state, reason

    def _service(self, at_ms: int, state: MachineState) -> int:
        hours = self.accepted.get(Signal.SERVICE_HOURS.value)
        if hours is not None and not isinstance(hours, str):
            return min(limits.MAX_DURATION_MS, round(hours * 3_600_000))
        # No hour meter: count the running time we see, from zero at the first sample and at each maintenance.
        last = self.last
        if last is not None and last.state is MachineState.RUNNING:
            self.service_ms += max(0, at_ms - last.at_ms)
        if state is MachineState.MAINTENANCE:
            self.service_ms = 0
        self.service_ms = min(self.service_ms, limits.MAX_DURATION_MS)
        return self.service_ms


def program_text(value: RawValue | None) -> str | None:
    """A program as the contract carries it: a register's number as its digits, a name as it is (trimmed)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()[: limits.MAX_TEXT_CHARS]
    return text or None


def _number(value: RawValue | None, default: float) -> float:
    return default if value is None or isinstance(value, str) else float(value)
