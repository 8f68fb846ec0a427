"""Each simulated machine as its own Modbus TCP server (pymodbus), one port per machine, as each retrofitted
PLC or I/O box has its own address. The registers (simulators/serve/layout.py) are computed when a request
comes, at that moment of plant time; a silent controller keeps the connection and never answers."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from ftel.contract.states import MachineState
from simulators.serve import layout
from simulators.serve.controller import Shown, SimulatedController


def registers(shown: Shown) -> list[int]:
    """The holding registers 0…10 that show ``shown`` (layout.py), encoded with struct, word by word."""
    words = [0] * layout.MODBUS_REGISTERS
    words[layout.REG_RUN] = int(shown.state is MachineState.RUNNING)
    words[layout.REG_FLAGS] = int(shown.state is MachineState.SETUP) | int(shown.state is MachineState.MAINTENANCE) << 1
    words[layout.REG_FAULT] = shown.fault_code
    words[layout.REG_UNITS] = shown.units % 65_536
    words[layout.REG_DEFECTS] = shown.defects % 65_536
    words[layout.REG_SPEED : layout.REG_SPEED + 2] = struct.unpack(">HH", struct.pack(">f", shown.speed))
    (words[layout.REG_TEMPERATURE],) = struct.unpack(">H", struct.pack(">h", round(shown.temperature * 10)))
    high, low = struct.unpack(">HH", struct.pack(">I", round(shown.service_hours * 60)))
    words[layout.REG_SERVICE_MIN : layout.REG_SERVICE_MIN + 2] = [low, high]  # least significant word first
    words[layout.REG_PROGRAM] = shown.program
    return words


class ModbusMachineServer:
    def __init__(
        self,
        controller: SimulatedController,
        *,
        host: str,
        port: int,
        now_ms: Callable[[], int],
        time_scale: float,
    ) -> None:
        self.controller = controller
        self.host, self.port = host, port
        self._now_ms = now_ms
        self._time_scale = time_scale
        device = SimDevice(
            id=layout.MODBUS_UNIT,
            simdata=[SimData(0, count=layout.MODBUS_REGISTERS, values=0, datatype=DataType.REGISTERS)],
            action=self._action,
        )
        self._server = ModbusTcpServer(device, address=(host, port))

    async def _action(  # noqa: PLR0917 - the signature pymodbus calls
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # a controller's state is not ours to write
        now = self._now_ms()
        quiet_until = self.controller.silent_until(now)
        if quiet_until is not None:
            # No answer at all: the request waits out the silence; the client has long given up by then.
            await asyncio.sleep(max(0.0, (quiet_until - now) / 1000 / self._time_scale))
            return ExcCodes.DEVICE_BUSY
        current[: layout.MODBUS_REGISTERS] = registers(self.controller.at(now))
        return None

    async def start(self) -> None:
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        await self._server.shutdown()  # type: ignore[no-untyped-call]
