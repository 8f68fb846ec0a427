"""Polled machines on a shared bus (gateway/drivers/poll.py): a poll waits for its turn, and is stamped and timed
from then on, so a unit waiting behind a slow one neither fails nor is stamped early."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from ftel.contract.states import MachineState, MachineType
from gateway.config import parse_gateway_config
from gateway.driver import MachineInfo
from gateway.drivers.errors import SourceError
from gateway.drivers.poll import LoopClock, PolledMachine, PollTiming
from gateway.signals import Sample, SignalInterpreter

MODEL = parse_gateway_config(
    """
workshop: yarn
gateway_id: gw-yarn
models:
  card: {type: carding, rated_speed: 30, speed_unit: m/min, service_interval_h: 160, modbus: {run: {address: 0}}}
machines:
  - {id: CARD-001, model: card, driver: {kind: modbus, host: 10.0.0.1}}
"""
).models["card"]


class SharedLine:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()


class Unit:
    """A source on the shared line; ``answer_s`` is how long it takes to answer."""

    def __init__(self, line: SharedLine, answer_s: float, clock: Callable[[], int]) -> None:
        self.line, self.answer_s, self.clock = line, answer_s, clock
        self.asked: list[int] = []

    async def connect(self) -> None:
        return None

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        async with self.line.lock:
            yield

    def turn(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._turn()

    async def read(self) -> Sample:
        if not self.line.lock.locked():
            raise SourceError("asked outside its turn: two units talking at once on one line")
        self.asked.append(self.clock())
        await asyncio.sleep(self.answer_s)
        return {"run": 1}

    async def watch(self, changed: Callable[[], None]) -> bool:
        return False

    async def close(self) -> None:
        return None


def machine(unit: Unit, machine_id: str, timeout_s: float) -> PolledMachine:
    info = MachineInfo(machine_id, MachineType.CARDING, "card", "line-1", 30.0, "m/min", 160.0)
    timing = PollTiming(interval_s=0.1, timeout_s=timeout_s, offline_after=1)
    return PolledMachine(info, unit, timing, SignalInterpreter(MODEL), resume_key=machine_id)


def test_a_unit_waiting_behind_a_slow_one_is_neither_failed_nor_stamped_early() -> None:
    async def story() -> tuple[PolledMachine, Unit]:
        loop = asyncio.get_running_loop()
        clock = LoopClock(lambda: round(loop.time() * 1000))
        line = SharedLine()
        slow, quick = Unit(line, 0.6, clock.now_ms), Unit(line, 0.0, clock.now_ms)
        # The quick unit's time limit (0.2 s) is shorter than its wait behind the slow one (0.6 s), by more than a
        # loaded machine delays the loop.
        machines = [machine(slow, "CARD-001", 1.2), machine(quick, "CARD-002", 0.2)]
        stopping = asyncio.Event()
        runs = [asyncio.create_task(m.run(clock, stopping)) for m in machines]
        await asyncio.sleep(3.0)
        stopping.set()
        await asyncio.gather(*runs)
        return machines[1], quick

    polled, quick = asyncio.run(story())
    readings = polled.read(2**62)
    assert polled.polls >= 3
    assert not polled.offline
    assert all(r.state is MachineState.RUNNING for r in readings)
    # Each reading is stamped when the unit was asked (its turn), not when its poll began to wait (0.6 s
    # before); the margin is for a loaded machine's loop, well short of the wait.
    assert all(0 <= asked - r.at_ms <= 100 for r, asked in zip(readings, quick.asked, strict=False))
