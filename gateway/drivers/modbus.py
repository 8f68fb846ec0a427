"""Modbus (pymodbus's async clients): a unit's signals read a table span at a time, over the bus it shares
with the other units at its address (modbus_bus.py: Modbus TCP, TCP→RTU gateways, RTU serial lines).

pymodbus is translated here and in modbus_bus.py, nowhere else: its exceptions become SourceError, its
responses numbers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from gateway.config import ModbusDriver, Register, Signal, Table, register_count
from gateway.drivers.errors import SourceError
from gateway.drivers.modbus_bus import Client, ModbusBus
from gateway.registers import decode
from gateway.signals import RawValue, Sample

log = logging.getLogger(__name__)

# A unit's answer to a read of addresses it does not have (Modbus exception code 2).
ILLEGAL_ADDRESS = 2
# The most registers one read may ask for (Modbus: 125 registers, 2000 bits).
MAX_REGISTERS = 125
MAX_BITS = 2000


@dataclass(frozen=True, slots=True)
class Span:
    """One read request: ``count`` registers (or bits) of ``table`` from ``address``."""

    table: Table
    address: int
    count: int


def plan(signals: Mapping[Signal, Register]) -> list[tuple[Span, list[tuple[Signal, Register]]]]:
    """The fewest reads that fetch every signal: each table's addresses in spans no wider than a request."""
    out: list[tuple[Span, list[tuple[Signal, Register]]]] = []
    for table in Table:
        limit = MAX_BITS if table in (Table.COIL, Table.DISCRETE) else MAX_REGISTERS
        members = sorted(((s, r) for s, r in signals.items() if r.table is table), key=lambda sr: sr[1].address)
        group: list[tuple[Signal, Register]] = []
        start = end = 0
        for signal, register in members:
            stop = register.address + register_count(register)
            if group and max(end, stop) - start > limit:
                out.append((Span(table, start, end - start), group))
                group = []
            if group:
                end = max(end, stop)
            else:
                start, end = register.address, stop
            group.append((signal, register))
        if group:
            out.append((Span(table, start, end - start), group))
    return out


class _NoSuchAddress(SourceError):
    """The unit refused a read with exception 2 (illegal data address)."""


class ModbusSource:
    """One unit: a Modbus TCP controller, a unit behind a Modbus TCP→RTU gateway, or a unit on a serial line,
    on the bus it shares with the others at that address (modbus_bus.py)."""

    def __init__(
        self,
        machine_id: str,
        driver: ModbusDriver,
        signals: Mapping[Signal, Register],
        *,
        bus: ModbusBus,
        timeout_s: float,
    ):
        self._machine_id = machine_id
        self._unit = driver.unit_id
        self._plan = plan(signals)
        self._bus = bus
        self._timeout_s = timeout_s
        self._attached = False

    @property
    def where(self) -> str:
        return f"{self._bus.where}/unit/{self._unit}"

    async def connect(self) -> None:
        await self.close()
        try:
            await self._bus.attach(self._machine_id)
        except SourceError as error:
            raise SourceError(f"{self._machine_id}: {error}") from error
        self._attached = True

    def turn(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._bus.turn()

    async def read(self) -> Sample:
        if not self._attached:
            raise SourceError(f"{self._machine_id}: not connected to {self.where}")
        sample: dict[str, RawValue] = {}
        index = 0
        while index < len(self._plan):
            span, members = self._plan[index]
            try:
                words = await self._read_span(span)
            except _NoSuchAddress:
                if len(members) == 1:
                    raise
                # A span over a hole in the unit's map: from now on, one request per signal.
                log.info("machine %s: %s has holes in %s %s+%d; reading each signal apart", self._machine_id,
                         self.where, span.table.value, span.address, span.count)  # fmt: skip
                self._plan[index : index + 1] = plan(dict(members[:1])) + plan(dict(members[1:]))
                continue
            for signal, register in members:
                offset = register.address - span.address
                sample[signal.value] = decode(register, words[offset : offset + register_count(register)])
            index += 1
        return sample

    async def _read_span(self, span: Span) -> list[int]:
        unit = self._unit

        def call(client: Client) -> Awaitable[ModbusPDU]:
            read: dict[Table, Callable[..., Awaitable[ModbusPDU]]] = {
                Table.HOLDING: client.read_holding_registers,
                Table.INPUT: client.read_input_registers,
                Table.COIL: client.read_coils,
                Table.DISCRETE: client.read_discrete_inputs,
            }
            return read[span.table](span.address, count=span.count, device_id=unit)

        try:
            response = await self._bus.request(call, self._timeout_s)
        except SourceError as error:
            raise SourceError(f"{self._machine_id}: {error}") from error
        except ModbusException as error:
            raise SourceError(f"{self._machine_id}: {span.table.value} {span.address}+{span.count}: {error}") from error
        if isinstance(response, ModbusPDU) and getattr(response, "exception_code", None) == ILLEGAL_ADDRESS:
            raise _NoSuchAddress(
                f"{self._machine_id}: {self.where} has no {span.table.value} {span.address}+{span.count} "
                f"(exception 2, illegal data address): check the addresses (0-based, as sent) and the table"
            )
        if not isinstance(response, ModbusPDU) or response.isError():
            raise SourceError(
                f"{self._machine_id}: {self.where} refused {span.table.value} {span.address}+{span.count}: {response}"
            )
        if span.table in (Table.COIL, Table.DISCRETE):
            return [int(b) for b in response.bits[: span.count]]
        registers = list(response.registers)
        if len(registers) < span.count:
            raise SourceError(f"{self._machine_id}: {self.where} sent {len(registers)} of {span.count} registers")
        return registers

    async def watch(self, changed: Callable[[], None]) -> bool:
        return False  # Modbus has no subscriptions: polling only

    async def close(self) -> None:
        if self._attached:
            self._attached = False
            self._bus.detach(self._machine_id)
