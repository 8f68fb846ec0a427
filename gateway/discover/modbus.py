"""`ftel gateway discover --modbus TARGET`: read a range of registers (or bits) of the given unit ids a few times,
show which change and how, and draft a gateway file that `ftel gateway probe` accepts.

TARGET is a Modbus TCP address (``host``, ``host:port``, ``tcp://host:port``: a controller, or a TCP→RTU
gateway with the units behind it) or a serial device (``/dev/ttyUSB0``, ``COM3``: Modbus RTU, with the line's
baud rate, parity and stop bits). Only read functions (1–4) are sent: nothing is written to a device.

Guesses (each marked ``# check`` in the draft): a register that only went up is a counter (``units``); one
that changed between 0 and 1 a flag (``run``); one that changed among other small numbers a code
(``fault_code``); bits of coils or discrete inputs, lamps of a stack-light tap (``green``, ``yellow``,
``red``, in the order of their addresses) when the unit has bits and no registers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU
from rich.console import Console
from rich.table import Table as RichTable

from ftel.errors import CliError
from gateway.cli import quiet_libraries
from gateway.config import LAMPS, ModbusDriver, Parity, SerialLine, Signal, Table
from gateway.discover import Progress
from gateway.drivers.errors import SourceError
from gateway.drivers.modbus_bus import Client, ModbusBuses

console = Console(stderr=True, soft_wrap=True)
MAX_COUNT = 125  # one read request's registers (the protocol's limit)
SMALL_CODE = 10_000  # a register changing among numbers below this (and not only 0/1) may be a code
ME = "discover"


@dataclass(frozen=True, slots=True)
class Target:
    """Where the units are: a TCP address, or a serial line."""

    host: str | None = None
    port: int = 502
    line: SerialLine | None = None

    @staticmethod
    def parse(text: str, *, baudrate: int = 19_200, parity: Parity = Parity.EVEN, stop_bits: int = 1) -> Target:
        if text.startswith(("/", "COM")) or ("://" in text and not text.startswith("tcp://")):
            line = {"device": text, "baudrate": baudrate, "parity": parity, "stop_bits": stop_bits}
            return Target(line=SerialLine.model_validate(line))
        address = text.removeprefix("tcp://").rstrip("/")
        host, _, port = address.rpartition(":") if address.count(":") == 1 else (address, "", "")
        return Target(host=host or address, port=int(port) if port else 502)

    def driver(self, unit: int, timeout_s: float) -> ModbusDriver:
        where = {"host": self.host, "port": self.port} if self.host else {"line": "line-1"}
        return ModbusDriver.model_validate({"kind": "modbus", "unit_id": unit, "timeout_s": timeout_s, **where})

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if self.host else str(self.line.device if self.line else "")


@dataclass(slots=True)
class Seen:
    """One unit's table: the values at each address, one per read (None where a read failed)."""

    unit: int
    table: Table
    start: int
    reads: list[list[int] | None] = field(default_factory=list)
    problem: str | None = None

    def values(self, offset: int) -> list[int]:
        return [r[offset] for r in self.reads if r is not None]

    @property
    def count(self) -> int:
        return max((len(r) for r in self.reads if r is not None), default=0)


@dataclass(frozen=True, slots=True)
class Guess:
    signal: Signal
    table: Table
    address: int
    why: str


def judge(values: Sequence[int]) -> str:
    """How a register or bit behaved over the reads: constant, a flag (0 and 1), counting up, a code (other
    small numbers), or changing."""
    if len(set(values)) <= 1:
        return "constant"
    if set(values) <= {0, 1}:
        return "flag"
    if all(b >= a for a, b in itertools.pairwise(values)):
        return "counting up"
    if max(values) < SMALL_CODE:
        return "code"
    return "changing"


def guesses(seen: list[Seen]) -> list[Guess]:
    """One unit's candidates, first found first (see the module docstring)."""
    out: list[Guess] = []
    placed: set[Signal] = set()
    bits = [s for s in seen if s.table in (Table.COIL, Table.DISCRETE) and s.count]
    words = [s for s in seen if s.table in (Table.HOLDING, Table.INPUT) and s.count]
    wanted = {"counting up": Signal.UNITS, "flag": Signal.RUN, "code": Signal.FAULT_CODE}
    for table_seen in words:
        for offset in range(table_seen.count):
            how = judge(table_seen.values(offset))
            signal = wanted.get(how)
            if signal is not None and signal not in placed:
                placed.add(signal)
                out.append(Guess(signal, table_seen.table, table_seen.start + offset, how))
    if not words and bits:
        first = bits[0]
        for lamp, offset in zip(LAMPS[:3], range(first.count), strict=False):
            how = judge(first.values(offset))
            out.append(Guess(lamp, first.table, first.start + offset, f"bit {how} (a lamp's input?)"))
    if Signal.RUN not in placed and not out and words:  # a draft probe accepts needs a state: run, checked by hand
        out.append(Guess(Signal.RUN, words[0].table, words[0].start, "nothing changed: put the run flag here"))
    return out


async def read_all(
    target: Target,
    units: Sequence[int],
    tables: Sequence[Table],
    *,
    start: int,
    count: int,
    reads: int,
    every_s: float,
    timeout_s: float,
    progress: Progress,
) -> dict[int, list[Seen]]:
    """Read each unit's tables ``reads`` times, ``every_s`` apart. Only read requests."""
    lines = {"line-1": target.line} if target.line else {}
    buses = ModbusBuses(lines)
    bus = buses.for_driver(target.driver(units[0], timeout_s), timeout_s=timeout_s)
    seen = {u: [Seen(u, t, start) for t in tables] for u in units}
    try:
        await bus.attach(ME)
    except SourceError as error:
        raise CliError(f"{error}; nothing was read") from error
    try:
        for round_ in range(1, reads + 1):
            progress(f"read {round_} of {reads}: units {', '.join(map(str, units))} at {target}")
            for unit in units:
                for table_seen in seen[unit]:
                    table_seen.reads.append(await _read(bus.request, table_seen, unit, count, timeout_s))
            if round_ < reads:
                await asyncio.sleep(every_s)
    finally:
        bus.detach(ME)
    return seen


async def _read(
    request: Callable[[Callable[[Client], Awaitable[ModbusPDU]], float], Awaitable[ModbusPDU]],
    seen: Seen,
    unit: int,
    count: int,
    timeout_s: float,
) -> list[int] | None:
    def call(client: Client) -> Awaitable[ModbusPDU]:
        read = {
            Table.HOLDING: client.read_holding_registers,
            Table.INPUT: client.read_input_registers,
            Table.COIL: client.read_coils,
            Table.DISCRETE: client.read_discrete_inputs,
        }[seen.table]
        return read(seen.start, count=count, device_id=unit)

    try:
        response = await request(call, timeout_s)
    except (SourceError, ModbusException, TimeoutError) as error:
        seen.problem = f"no answer ({error or 'time limit passed'}): check the unit id, the wiring, the line settings"
        return None
    if response.isError():
        seen.problem = (
            f"refused (exception code {getattr(response, 'exception_code', '?')}): the unit has no "
            f"{seen.table.value} {seen.start}+{count}; try another --start / --count or --table"
        )
        return None
    values = response.bits[:count] if seen.table in (Table.COIL, Table.DISCRETE) else response.registers
    return [int(v) for v in values]


def draft(target: Target, seen: dict[int, list[Seen]], *, workshop: str, gateway_id: str, command: str) -> str:
    """A gateway file: one model per unit with its guesses, one machine per unit (YAML with ``# check`` notes)."""
    lines = [
        f"# Drafted by `{command}`: check every line marked `check`,",
        "# then `ftel gateway probe --config THIS_FILE` with each machine in each state (docs/gateway.md).",
        f"workshop: {workshop}",
        f"gateway_id: {gateway_id}",
    ]
    if target.line is not None:
        line = target.line.model_dump(mode="json", exclude_defaults=False)
        lines += ["serial_lines:", f"  line-1: {yaml.safe_dump(line, default_flow_style=True, width=200).strip()}"]
    lines.append("models:")
    machines = []
    for unit, tables in seen.items():
        found = guesses(tables)
        if not found:
            lines.append(f"  # unit {unit}: nothing read; left out")
            continue
        name = f"unit {unit} (draft)"
        lines += [f"  {name}:", "    type: carding          # check: carding | spinning | knitting"]
        lines += ["    rated_speed: 1         # check", "    speed_unit: m/min      # check"]
        lines += ["    service_interval_h: 200  # check", "    modbus:"]
        for guess in found:
            spec = {"table": guess.table.value, "address": guess.address}
            if guess.table in (Table.COIL, Table.DISCRETE):
                spec["type"] = "bool"
            body = yaml.safe_dump(spec, default_flow_style=True, width=200).strip()
            lines.append(f"      {guess.signal.value}: {body}  # check: {guess.why}")
        if any(g.signal is Signal.FAULT_CODE for g in found):
            lines.append("    faults: {codes: {}}     # check: the vendor's fault codes -> reason codes")
        machines.append((unit, name, any(g.signal in LAMPS for g in found)))
    lines.append("machines:")
    for unit, name, lamps in machines:
        where = f"host: {target.host}, port: {target.port}" if target.host else "line: line-1"
        # A lamp tap is polled faster than a blink's shortest phase, so blinking can be told (docs/gateway.md).
        fast = ", poll_interval_s: 0.2, timeout_s: 0.2" if lamps else ""
        note = "  # check: poll faster than the lamps' shortest blink phase" if lamps else ""
        driver = f"{{kind: modbus, {where}, unit_id: {unit}{fast}}}"
        lines.append(f"  - {{id: UNIT-{unit:03d}, model: {name}, driver: {driver}}}{note}")
    return "\n".join(lines) + "\n"


def show(target: Target, seen: dict[int, list[Seen]]) -> None:
    """What changed, per unit and table (stderr)."""
    for unit, tables in seen.items():
        table = RichTable(title=f"{target} unit {unit}")
        for column in ("table", "address", "values read", "behaviour"):
            table.add_column(column)
        for table_seen in tables:
            if table_seen.problem:
                table.add_row(table_seen.table.value, f"{table_seen.start}…", f"[red]{table_seen.problem}[/red]", "")
            for offset in range(table_seen.count):
                values = table_seen.values(offset)
                how = judge(values)
                if how == "constant" and not any(values):
                    continue  # zero throughout: nothing to tell
                style = "bold" if how != "constant" else "dim"
                table.add_row(
                    table_seen.table.value,
                    str(table_seen.start + offset),
                    " ".join(map(str, values)),
                    f"[{style}]{how}[/{style}]",
                )
        console.print(table)


def discover_command(
    target: Target,
    units: Sequence[int],
    tables: Sequence[Table],
    *,
    start: int,
    count: int,
    reads: int,
    every_s: float,
    timeout_s: float,
    workshop: str,
    gateway_id: str,
    out: Path | None,
    command: str,
) -> int:
    """Read, show, draft (stdout, or ``out``); 0 when some unit answered."""
    quiet_libraries()
    count = min(count, MAX_COUNT)
    seen = asyncio.run(
        read_all(
            target,
            units,
            tables,
            start=start,
            count=count,
            reads=reads,
            every_s=every_s,
            timeout_s=timeout_s,
            progress=lambda line: console.print(f"[dim]…[/dim] {line}"),
        )
    )
    show(target, seen)
    text = draft(target, seen, workshop=workshop, gateway_id=gateway_id, command=command)
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        console.print(f"draft written to {out}; check it, then: ftel gateway probe --config {out}")
    return 0 if any(s.count for tables in seen.values() for s in tables) else 1
