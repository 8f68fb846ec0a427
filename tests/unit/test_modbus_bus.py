"""The Modbus bus shared by the units of one serial line or TCP→RTU gateway (gateway/drivers/modbus_bus.py), with
a stand-in client: one connection for all its units, turns in the order asked, the line's silence before each
request, a unit's own time limit, the last unit out closes."""

from __future__ import annotations

import asyncio
import itertools
from typing import cast

import pytest

from gateway.drivers.errors import SourceError
from gateway.drivers.modbus_bus import Client, ModbusBus

GAP_S = 0.02


class StandIn:
    """What the bus uses of a pymodbus client."""

    made = 0

    def __init__(self) -> None:
        StandIn.made += 1
        self.connected = False

    async def connect(self) -> bool:
        self.connected = True
        return True

    def close(self) -> None:
        self.connected = False


def bus() -> ModbusBus:
    StandIn.made = 0
    return ModbusBus("modbus-rtu:///dev/stand-in", lambda timeout: cast(Client, StandIn()), gap_s=GAP_S)


def test_units_share_one_connection_and_the_last_one_out_closes_it() -> None:
    async def story() -> None:
        line = bus()
        for unit in ("A", "B", "C"):
            await line.attach(unit)
        assert StandIn.made == 1
        line.detach("A")
        line.detach("B")
        assert await line.request(lambda client: _answer(client.connected), 1.0) is True
        line.detach("C")
        with pytest.raises(SourceError, match="not connected"):
            await line.request(lambda client: _answer(True), 1.0)

    asyncio.run(story())


async def _answer(value: bool) -> bool:
    return value


def test_turns_come_in_the_order_asked_with_the_lines_silence_between_requests() -> None:
    async def story() -> list[tuple[str, float]]:
        line = bus()
        await line.attach("all")
        loop = asyncio.get_running_loop()
        sent: list[tuple[str, float]] = []

        async def poll(unit: str, requests: int) -> None:
            async with line.turn():
                for _ in range(requests):
                    await line.request(lambda client: _sent(unit), 1.0)

        async def _sent(unit: str) -> bool:  # called when the request goes on the wire
            sent.append((unit, loop.time()))
            return True

        await asyncio.gather(poll("A", 2), poll("B", 1), poll("C", 2))
        return sent

    sent = asyncio.run(story())
    assert [unit for unit, _ in sent] == ["A", "A", "B", "C", "C"]  # a unit's requests together, units in turn
    assert all(later - earlier >= GAP_S for (_, earlier), (_, later) in itertools.pairwise(sent))


def test_a_silent_unit_costs_its_own_time_limit_then_the_line_goes_on() -> None:
    async def story() -> None:
        line = bus()
        await line.attach("all")
        with pytest.raises(TimeoutError):
            await line.request(lambda client: asyncio.sleep(60), 0.05)  # never answers
        assert await line.request(lambda client: _answer(True), 1.0) is True

    asyncio.run(asyncio.wait_for(story(), 5))
