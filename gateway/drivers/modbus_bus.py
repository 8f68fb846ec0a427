"""One Modbus connection shared by the units on it: a serial line (Modbus RTU on RS-485, pymodbus's serial
client) or a TCP address (a unit of its own, or a Modbus TCP→RTU gateway with many unit ids behind it).

A master speaks to one unit at a time: a unit's poll takes the bus for its turn (its requests, nothing of another
unit's in between), turns are given in the order asked (asyncio's lock is FIFO), and on a serial line every
request waits out the line's silence (t3.5, rtu_timing.py) after the previous frame. Each request has its own
unit's time limit, so a silent unit costs the others only its time limit per poll, never an OFFLINE.

The connection is made when the first unit connects, made again when a unit finds it broken, and closed when
the last unit lets go. pymodbus is translated here and in modbus.py, nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from gateway.config import ModbusDriver, Parity, SerialLine
from gateway.drivers.errors import DriverError, SourceError
from gateway.drivers.rtu_timing import LineTiming

Client = AsyncModbusTcpClient | AsyncModbusSerialClient
T = TypeVar("T")

_PARITY = {Parity.NONE: "N", Parity.EVEN: "E", Parity.ODD: "O"}


def line_timing(line: SerialLine) -> LineTiming:
    return LineTiming(line.baudrate, line.parity is not Parity.NONE, line.stop_bits)


class ModbusBus:
    """One connection and the turns of the units that share it (see the module docstring)."""

    def __init__(
        self,
        where: str,
        make_client: Callable[[float], Client],
        *,
        gap_s: float = 0.0,
        diagnose: Callable[[], str] | None = None,
    ) -> None:
        self.where = where
        self._diagnose = diagnose or (lambda: "check the address, the port, a firewall")
        self._make_client = make_client
        self._gap_s = gap_s
        self._timeout_s = 0.0
        self._client: Client | None = None
        self._members: set[str] = set()
        self._lock = asyncio.Lock()
        self._quiet_at = 0.0  # loop time when the line has been silent long enough for the next request
        self.requests = 0

    def allow(self, timeout_s: float) -> None:
        """A unit with this time limit uses the bus: the client waits at least that long for an answer."""
        self._timeout_s = max(self._timeout_s, timeout_s)

    async def attach(self, member: str) -> None:
        """``member`` uses the bus: connect it if no one has, or if the connection broke."""
        async with self._lock:
            self._members.add(member)
            client = self._client
            if client is not None and client.connected:
                return
            if client is not None:
                client.close()
            # Reconnecting is ours to do (with backoff, per unit), and so are retries: a poll that fails is
            # counted, not hidden.
            client = self._client = self._make_client(self._timeout_s)
            try:
                connected = await client.connect()
            except (ModbusException, OSError) as error:
                self._drop()
                raise SourceError(f"cannot connect to {self.where}: {error}") from error
            if not connected:
                self._drop()
                raise SourceError(f"cannot connect to {self.where}: {self._diagnose()}")

    def detach(self, member: str) -> None:
        """``member`` is done with the bus (or failed): the last one out closes the connection."""
        self._members.discard(member)
        if not self._members:
            self._drop()

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """The bus for one unit's poll: no other unit's request until it ends."""
        async with self._lock:
            yield

    async def request(self, call: Callable[[Client], Awaitable[T]], timeout_s: float) -> T:
        """One request, in a turn: after the line's silence, within ``timeout_s``."""
        client = self._client
        if client is None or not client.connected:
            raise SourceError(f"not connected to {self.where}")
        loop = asyncio.get_running_loop()
        if (wait := self._quiet_at - loop.time()) > 0:
            await asyncio.sleep(wait)
        self.requests += 1
        try:
            return await asyncio.wait_for(call(client), timeout_s)
        finally:
            # After an answer, or a time-out (a late answer may still be on the wire), the line's silence.
            self._quiet_at = loop.time() + self._gap_s


class ModbusBuses:
    """The buses of one gateway, by what their units share (ModbusDriver.bus)."""

    def __init__(self, lines: Mapping[str, SerialLine]) -> None:
        self._lines = lines
        self._buses: dict[str, ModbusBus] = {}

    def for_driver(self, driver: ModbusDriver, *, timeout_s: float) -> ModbusBus:
        bus = self._buses.get(driver.bus)
        if bus is None:
            bus = self._buses[driver.bus] = self._new(driver)
        bus.allow(timeout_s)
        return bus

    def _new(self, driver: ModbusDriver) -> ModbusBus:
        if driver.host is not None:
            host, port = driver.host, driver.port
            return ModbusBus(
                f"modbus://{host}:{port}",
                lambda timeout: AsyncModbusTcpClient(host, port=port, timeout=timeout, retries=0, reconnect_delay=0),
            )
        assert driver.line is not None  # the configuration checked one of host and line
        line = self._lines.get(driver.line)
        if line is None:
            raise DriverError(f"serial line {driver.line!r} is not under serial_lines")

        def serial(timeout: float) -> Client:
            return AsyncModbusSerialClient(
                line.device,
                framer=FramerType.RTU,
                baudrate=line.baudrate,
                parity=_PARITY[line.parity],
                stopbits=line.stop_bits,
                handle_local_echo=line.local_echo,
                timeout=timeout,
                retries=0,
                reconnect_delay=0,
            )

        return ModbusBus(
            f"modbus-rtu://{line.device}", serial, gap_s=line_timing(line).gap_s, diagnose=lambda: why_not(line.device)
        )


def why_not(device: str) -> str:
    """Why a serial device could not be opened, as far as the file system tells (pymodbus only logs it)."""
    path = Path(device)
    if not device.startswith("/") or "://" in device:
        return "check the device name and that no other program holds it"
    if not path.exists():
        return "no such device (unplugged, or renamed: use its /dev/serial/by-id/… name)"
    if not os.access(path, os.R_OK | os.W_OK):
        return "permission denied (add the gateway's user to the dialout group)"
    return "the port is busy or refused its settings (another program holding it? one master per line)"
