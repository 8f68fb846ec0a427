"""Modbus equipment for tests, served by pymodbus's own servers (not our simulator): a serial line of RTU units
on one end of a virtual serial pair that Debian's socat makes, a Modbus TCP→RTU gateway (a TCP server with
several unit ids), and a stack-light tap (a digital-input module's discrete inputs). The test drives each unit's
datastore through the server's own API and the equipment records what it did, stamped when the datastore
changed: that record is the truth the gateway's figures are compared with.

A silent unit is silent on the wire: its answers are dropped as they are about to be sent (the server's
trace_packet hook), as a unit that lost power is, while the other units on the line answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import shutil
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from ftel.contract.states import MachineState

T = TypeVar("T")

# The register map of the tests' retrofit boxes (the docs' carding example, cut down): holding registers.
REG_RUN, REG_FLAGS, REG_FAULT, REG_UNITS = 0, 1, 2, 3
REGISTERS = 10
# The lamp tap's discrete inputs.
DI_GREEN, DI_YELLOW, DI_RED, DI_UNITS = 0, 1, 2, 4
INPUTS = 16

FAULT_CODES = {"fibre_choke": 11, "feed_empty": 12, "clothing_wear": 13, "motor_overload": 14}
LAMPS = {"green": DI_GREEN, "yellow": DI_YELLOW, "red": DI_RED}


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def device(unit: int) -> SimDevice:
    """Coils, discrete inputs, holding and input registers apart, as a retrofit box or an I/O module has them."""
    bits = [SimData(0, count=INPUTS, values=False, datatype=DataType.BITS)]
    words = [SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)]
    return SimDevice(id=unit, simdata=(bits, list(bits), words, list(words)))


@dataclass
class Record:
    """What the equipment did: each machine's state changes (wall ms) and the units it made."""

    changes: dict[str, list[tuple[int, MachineState, str | None]]] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)
    answers: dict[tuple[str, int], int] = field(default_factory=dict)  # (server, unit) → responses sent
    functions: set[int] = field(default_factory=set)  # the function codes of every request received
    connections: dict[str, int] = field(default_factory=dict)  # server → connections made to it
    # server → when each response began to be sent and the next request began to arrive (monotonic seconds)
    wire: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)

    def silences_s(self, server: str) -> list[float]:
        """The line's silence before each request that followed a response: from the response being sent to
        the next request arriving (an upper estimate of the gateway's own wait)."""
        events = self.record_wire(server)
        return [rx - tx for (tx, sent), (rx, got) in itertools.pairwise(events) if sent and not got]

    def record_wire(self, server: str) -> list[tuple[float, bool]]:
        return list(self.wire.get(server, []))

    def change(self, machine: str, state: MachineState, reason: str | None = None, *, at_ms: int | None = None) -> None:
        """A change of the equipment, at ``at_ms``: taken before the change is made (the gateway may see it
        before the call that made it returns, on a loaded host), so a change is never stored before its truth."""
        self.changes.setdefault(machine, []).append((wall_ms() if at_ms is None else at_ms, state, reason))


class Equipment:
    """pymodbus servers on their own asyncio loop in a background thread (see the module docstring)."""

    def __init__(self) -> None:
        self.record = Record()
        self.silent: set[tuple[str, int]] = set()
        self._servers: dict[str, ModbusSerialServer | ModbusTcpServer] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="equipment", daemon=True)
        self._thread.start()
        self._tasks: list[concurrent.futures.Future[None]] = []

    def call(self, coroutine: Awaitable[T], timeout_s: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(_awaited(coroutine), self._loop).result(timeout_s)

    def _tracer(self, name: str, unit_at: int) -> Callable[[bool, bytes], bytes]:
        def trace(sending: bool, packet: bytes) -> bytes:
            if not sending or len(packet) <= unit_at:
                self._wire(name, sending=False)
                return packet
            key = (name, packet[unit_at])
            if key in self.silent:
                return b""  # nothing on the wire
            self.record.answers[key] = self.record.answers.get(key, 0) + 1
            self._wire(name, sending=True)
            return packet

        return trace

    def _wire(self, name: str, *, sending: bool) -> None:
        events = self.record.wire.setdefault(name, [])
        if not events or events[-1][1] != sending:  # the first chunk of each frame
            events.append((time.monotonic(), sending))

    def _heard(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.record.functions.add(pdu.function_code)
        return pdu

    def _connected(self, name: str) -> Callable[[bool], None]:
        def count(connected: bool) -> None:
            if connected:
                self.record.connections[name] = self.record.connections.get(name, 0) + 1

        return count

    def serve_serial(self, name: str, port: Path, units: list[int], *, baudrate: int, stop_bits: int) -> None:
        async def start() -> None:
            server = ModbusSerialServer(
                [device(u) for u in units],
                port=str(port),
                baudrate=baudrate,
                parity="N",
                stopbits=stop_bits,
                trace_packet=self._tracer(name, 0),  # RTU: the unit id is the frame's first byte
                trace_pdu=self._heard,
            )
            await server.serve_forever(background=True)
            self._servers[name] = server

        self.call(start())

    def serve_tcp(self, name: str, port: int, units: list[int], *, devices: list[SimDevice] | None = None) -> None:
        async def start() -> None:
            server = ModbusTcpServer(
                devices or [device(u) for u in units],
                address=("127.0.0.1", port),
                trace_packet=self._tracer(name, 6),  # TCP: the unit id follows the 6-byte MBAP header
                trace_pdu=self._heard,
                trace_connect=self._connected(name),
            )
            await server.serve_forever(background=True)
            self._servers[name] = server

        self.call(start())

    async def write(self, server: str, unit: int, table: str, address: int, values: list[int]) -> None:
        """Into the server's own datastore (function 6/16 for registers, 5/15 for coils, 2 for inputs)."""
        code = {"holding": 16, "coil": 15, "discrete": 2}[table]
        await self._servers[server].async_setValues(unit, code, address, values)

    def run(self, coroutine: Awaitable[None]) -> None:
        """Run a script on the equipment's loop, in the background."""
        self._tasks.append(asyncio.run_coroutine_threadsafe(_awaited(coroutine), self._loop))

    def stop_scripts(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers.values():
                await server.shutdown()  # type: ignore[no-untyped-call]

        with contextlib.suppress(Exception):
            self.call(stop())
        for task in self._tasks:
            task.cancel()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


@contextlib.contextmanager
def serial_pair(directory: Path) -> Iterator[tuple[Path, Path]]:
    """Two pseudo-terminals joined by socat: what one end sends the other receives, like a serial cable."""
    socat = shutil.which("socat")
    assert socat, "socat is missing: make setup installs it (Debian package socat)"
    ends = directory / "rtu-equipment", directory / "rtu-gateway"
    process = subprocess.Popen(
        [socat, "-d", "-d", f"pty,raw,echo=0,link={ends[0]}", f"pty,raw,echo=0,link={ends[1]}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert process.stderr is not None
        ready = 0
        while ready < 2:  # socat says "PTY is /dev/pts/N" for each end before it starts transferring
            line = process.stderr.readline().decode()
            assert line, f"socat ended: {process.wait()}"
            ready += "PTY is" in line
        yield ends
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()
