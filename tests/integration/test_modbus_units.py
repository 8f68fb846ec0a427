"""A Modbus unit as vendors ship it, served by pymodbus's own server: holes in its register map. The signals
around a hole are read in one request until the unit refuses it (exception 2), then signal by signal."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pymodbus.simulator import DataType, SimData, SimDevice

from ftel.stack import free_port
from gateway.config import ModbusDriver, parse_gateway_config
from gateway.drivers.build import source_for
from gateway.drivers.modbus_bus import ModbusBuses
from tests.modbus_equipment import Equipment

pytestmark = pytest.mark.integration

GATEWAY_FILE = """
workshop: yarn
gateway_id: gw-yarn
models:
  card:
    type: carding
    rated_speed: 30
    speed_unit: m/min
    service_interval_h: 160
    modbus:
      run: {{address: 0}}
      fault_code: {{address: 2}}
      units: {{address: 10}}
machines:
  - {{id: CARD-001, model: card, driver: {{kind: modbus, host: 127.0.0.1, port: {port}, unit_id: 1}}}}
"""


@pytest.fixture
def equipment() -> Iterator[Equipment]:
    eq = Equipment()
    yield eq
    eq.close()


def test_a_unit_with_holes_in_its_map_is_read_signal_by_signal(equipment: Equipment) -> None:
    # Holding registers 0…3 and 10…11 only: a read of 0…10 crosses the hole.
    words = [
        SimData(0, count=4, values=0, datatype=DataType.REGISTERS),
        SimData(10, count=2, values=0, datatype=DataType.REGISTERS),
    ]
    bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
    port = free_port()
    holey = SimDevice(id=1, simdata=(bits, list(bits), words, list(words)))
    equipment.serve_tcp("holes", port, [1], devices=[holey])
    equipment.call(equipment.write("holes", 1, "holding", 0, [1, 0, 12]))
    equipment.call(equipment.write("holes", 1, "holding", 10, [77]))
    config = parse_gateway_config(GATEWAY_FILE.format(port=port))
    buses = ModbusBuses({})
    machine = config.machines[0]
    assert isinstance(machine.driver, ModbusDriver)
    source, _ = source_for(machine, config.models["card"], time_scale=1.0, buses=buses)
    bus = buses.for_driver(machine.driver, timeout_s=1.0)

    async def two_reads() -> tuple[object, object, int]:
        await source.connect()
        try:
            first = await source.read()
            before = bus.requests
            second = await source.read()
            return first, second, bus.requests - before
        finally:
            await source.close()

    first, second, requests = asyncio.run(two_reads())
    assert first == second == {"run": 1, "fault_code": 12, "units": 77}
    assert requests == 3  # the plan stays split: no refused request any more
    assert equipment.record.functions == {3}
