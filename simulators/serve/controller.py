"""What a simulated machine's controller shows at a moment of plant time: its state, fault code, counters,
speed, temperature and run hours, from the seeded machine model (the same one the ledger reads), with the
injected controller faults applied.

Before the simulation's start the controller shows the machine as at its start (counters at zero); after its
end it holds still, showing the state it was in just before the end and the counters at the end, so a gateway
that reads past the end sees exactly what the ledger counts up to it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace

from ftel.contract.states import MachineState, MachineType
from ftel.plant.orders import OrderBook
from gateway.driver import Reading
from simulators.driver import SimulatedDriver
from simulators.jobs import simulated_job_changes
from simulators.machine import MachineModel
from simulators.serve.faults import Faults
from simulators.serve.layout import fault_code


@dataclass(frozen=True, slots=True)
class Shown:
    answering: bool
    state: MachineState
    reason: str | None
    fault_code: int
    units: int  # the controller's own counters: from ``counter_start``, from zero again after a restart
    defects: int
    speed: float
    temperature: float
    service_hours: float
    program: int = 0  # the style's program number (0: none), as a register shows it
    program_name: str = ""  # its program name, as an OPC UA variable shows it


# How far ahead a served controller without an end knows its styles: past it, it keeps its last one.
PROGRAM_HORIZON_MS = 2 * 86_400_000


class SimulatedController:
    def __init__(
        self,
        model: MachineModel,
        *,
        end_ms: int | None,
        faults: Faults,
        counter_start: int = 0,
        orders: OrderBook | None = None,
    ) -> None:
        """``orders``: the styles its knitting machine changes between (simulators/jobs.py); none: no program."""
        self.machine_id = model.spec.id
        self.machine_type: MachineType = model.spec.type
        self._driver = SimulatedDriver(model)
        self._start = model.start_ms
        self._end = end_ms
        self._t = model.start_ms - 1
        self._last: Reading | None = None
        mine = model.spec.id

        def ms(seconds: float) -> int:  # plant seconds after the start → epoch ms
            return model.start_ms + round(seconds * 1000)

        self._silences = [(ms(f.at_s), ms(f.at_s + f.duration_s)) for f in faults.silent if f.machine == mine]
        self._garbles = [(ms(f.at_s), ms(f.at_s + f.duration_s), f) for f in faults.garble if f.machine == mine]
        self._restarts = sorted(ms(f.at_s) for f in faults.restart if f.machine == mine)
        self._units_offset = counter_start
        self._defects_offset = counter_start
        horizon = end_ms if end_ms is not None else model.start_ms + PROGRAM_HORIZON_MS
        jobs = simulated_job_changes(model, orders, end_ms=horizon, window_ms=60_000) if orders else iter(())
        self._programs: list[tuple[int, int, str]] = []
        for change in jobs:
            style = orders.style(change.job.style) if orders else None
            shown = (style.program or 0, style.program_name or "") if style else (0, "")
            if not self._programs or self._programs[-1][1:] != shown:
                self._programs.append((change.at_ms, *shown))
        self._program_times = [at for at, _, _ in self._programs]

    def _read(self, t: int) -> Reading:
        readings = self._driver.read(t)
        if readings:
            self._last = readings[-1]
        assert self._last is not None  # the first read at or after the start always yields one
        return self._last

    def _reading(self, t: int) -> Reading:
        """The model's reading at plant time ``t`` (clamped to the run; never backwards)."""
        t = max(t, self._start)
        if self._end is not None:
            t = min(t, self._end)
        if t <= self._t and self._last is not None:
            return self._last
        while self._restarts and self._restarts[0] <= t:
            restart = self._restarts.pop(0)
            at = self._read(max(restart, self._start)) if restart > self._t else self._read(self._t)
            # The controller starts again from zero: what it shows from now on counts from here.
            self._units_offset, self._defects_offset = -at.units_total, -at.defects_total
        if self._end is not None and t == self._end:
            before = self._read(self._end - 1) if self._t < self._end - 1 else self._read(self._t)
            at_end = self._read(self._end)
            self._last = replace(at_end, state=before.state, reason=before.reason, speed=before.speed)
        else:
            self._read(t)
        self._t = t
        assert self._last is not None
        return self._last

    def at(self, now_ms: int) -> Shown:
        reading = self._reading(now_ms)
        t = self._t
        code = fault_code(self.machine_type, reading.reason) if reading.state is MachineState.DOWN else 0
        index = bisect.bisect_right(self._program_times, t) - 1
        program = self._programs[index] if index >= 0 else None
        temperature = reading.temperature
        for start, end, garble in self._garbles:
            if start <= t < end:
                if garble.temperature_c is not None:
                    temperature = garble.temperature_c
                if garble.fault_code is not None and code:
                    code = garble.fault_code
        return Shown(
            answering=not any(start <= t < end for start, end in self._silences),
            state=reading.state,
            reason=reading.reason,
            fault_code=code,
            units=self._units_offset + reading.units_total,
            defects=self._defects_offset + reading.defects_total,
            speed=reading.speed,
            temperature=temperature,
            service_hours=reading.run_ms_since_service / 3_600_000,
            program=program[1] if program else 0,
            program_name=program[2] if program else "",
        )

    def silent_until(self, now_ms: int) -> int | None:
        """The plant time at which the controller answers again, if it is silent at ``now_ms``."""
        t = max(now_ms, self._start)
        return next((end for start, end in self._silences if start <= t < end), None)
