"""Modbus TCP (pymodbus's async client): one connection per machine, its signals read a table span at a time.

pymodbus is translated here and nowhere else: its exceptions become SourceError, its responses numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from gateway.config import ModbusDriver, Register, Signal, Table, register_count
from gateway.drivers.errors import SourceError
from gateway.registers import decode
from gateway.signals import RawValue, Sample

log = logging.getLogger(__name__)

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


class ModbusSource:
    """One machine's Modbus TCP controller (or its unit behind a Modbus gateway)."""

    def __init__(self, machine_id: str, driver: ModbusDriver, signals: Mapping[Signal, Register], *, timeout_s: float):
        self._machine_id = machine_id
        self._driver = driver
        self._plan = plan(signals)
        self._timeout_s = timeout_s
        self._client: AsyncModbusTcpClient | None = None

    @property
    def where(self) -> str:
        d = self._driver
        return f"modbus://{d.host}:{d.port}/unit/{d.unit_id}"

    async def connect(self) -> None:
        await self.close()
        # Reconnecting is ours to do (with backoff, per machine), and so are retries: a poll that fails is
        # counted, not hidden.
        client = AsyncModbusTcpClient(
            self._driver.host, port=self._driver.port, timeout=self._timeout_s, retries=0, reconnect_delay=0
        )
        self._client = client
        try:
            connected = await client.connect()
        except (ModbusException, OSError) as error:
            raise SourceError(f"{self._machine_id}: cannot connect to {self.where}: {error}") from error
        if not connected:
            raise SourceError(f"{self._machine_id}: cannot connect to {self.where}")

    async def read(self) -> Sample:
        client = self._client
        if client is None or not client.connected:
            raise SourceError(f"{self._machine_id}: not connected to {self.where}")
        sample: dict[str, RawValue] = {}
        for span, members in self._plan:
            words = await self._read_span(client, span)
            for signal, register in members:
                offset = register.address - span.address
                sample[signal.value] = decode(register, words[offset : offset + register_count(register)])
        return sample

    async def _read_span(self, client: AsyncModbusTcpClient, span: Span) -> list[int]:
        unit = self._driver.unit_id
        calls: dict[Table, Callable[..., object]] = {
            Table.HOLDING: client.read_holding_registers,
            Table.INPUT: client.read_input_registers,
            Table.COIL: client.read_coils,
            Table.DISCRETE: client.read_discrete_inputs,
        }
        try:
            response = await calls[span.table](span.address, count=span.count, device_id=unit)  # type: ignore[misc]
        except ModbusException as error:
            raise SourceError(f"{self._machine_id}: {span.table.value} {span.address}+{span.count}: {error}") from error
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
        client, self._client = self._client, None
        if client is not None:
            client.close()
