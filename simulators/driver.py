"""The simulated driver: a push driver over a MachineModel, reporting each state change at its exact time."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

from ftel.contract.states import MachineState
from ftel.errors import ConfigError
from ftel.plant.layout import default_plant, load_plant
from gateway.config import GatewayConfig, MachineConfig
from gateway.config import SimulatedDriver as SimulatedDriverConfig
from gateway.driver import MachineInfo, Reading
from simulators.machine import MachineModel, Segment, is_defective, plant_models


class SimulatedDriver:
    def __init__(
        self, model: MachineModel, *, info: MachineInfo | None = None, programs: Sequence[tuple[int, str]] = ()
    ) -> None:
        """``info``: what the gateway calls the machine (default: the plant's spec); ``programs``: (from when,
        program) in time order, what its controller shows it runs (simulators/jobs.py; none: it shows none)."""
        self._model = model
        self._program_times = [at for at, _ in programs]
        self._programs = [program for _, program in programs]
        self._segments: Iterator[Segment] = model.segments()
        self._current = next(self._segments)
        self._last_ms = model.start_ms - 1
        self._units_counted = 0
        self._defects = 0
        spec = model.spec
        self._info = info or MachineInfo(
            spec.id,
            spec.type,
            spec.model,
            spec.line,
            spec.rated_speed,
            spec.speed_unit,
            spec.service_interval_h,
        )

    @property
    def info(self) -> MachineInfo:
        return self._info

    @property
    def resume_key(self) -> str:
        return f"simulated:{self._model.seed}:{self._model.start_ms}"

    def next_change_ms(self) -> int:
        """When the current segment ends or the program changes: until then, reading this machine tells nothing
        new (KnowsNextChange)."""
        index = bisect.bisect_right(self._program_times, self._last_ms)
        if index < len(self._program_times):
            return min(self._current.end_ms, self._program_times[index])
        return self._current.end_ms

    def resume(self, at_ms: int) -> bool:
        """The simulated machine's life is known to the millisecond: fast-forward to ``at_ms``, and the next
        read reports every change since, exactly as if the gateway had never stopped."""
        self.read(at_ms)
        return True

    def read(self, at_ms: int) -> list[Reading]:
        """Readings at each state change in (previous call, at_ms), then at ``at_ms``. The first call only
        fast-forwards: a gateway reports from when it starts watching, not from the machine's past."""
        if at_ms <= self._last_ms:
            return []
        first_call = self._last_ms < self._model.start_ms
        readings: list[Reading] = []
        changes = [] if first_call else self._program_changes(at_ms)
        while self._current.end_ms <= at_ms:
            following = next(self._segments)
            while changes and changes[0] < following.start_ms:
                readings.append(self._reading(changes.pop(0)))
            self._current = following
            if not first_call and self._last_ms < self._current.start_ms < at_ms:
                readings.append(self._reading(self._current.start_ms))
                changes = [t for t in changes if t != self._current.start_ms]
        readings.extend(self._reading(t) for t in changes)
        readings.append(self._reading(at_ms))
        self._last_ms = at_ms
        return readings

    def _program_changes(self, at_ms: int) -> list[int]:
        """Program changes in (the last read, ``at_ms``): each one is reported at its own time."""
        first = bisect.bisect_right(self._program_times, self._last_ms)
        last = bisect.bisect_left(self._program_times, at_ms)
        return self._program_times[first:last]

    def _program_at(self, at_ms: int) -> str | None:
        index = bisect.bisect_right(self._program_times, at_ms) - 1
        return self._programs[index] if index >= 0 else None

    def _reading(self, at_ms: int) -> Reading:
        model, segment = self._model, self._current
        units = model.units_at(segment, at_ms)
        rate = model.profile.defect_rate_bp
        while self._units_counted < units:
            self._defects += is_defective(model.seed, self._units_counted, rate)
            self._units_counted += 1
        running = segment.state is MachineState.RUNNING
        anomaly = model.anomaly_at(at_ms)
        speed_factor = anomaly.speed_factor if anomaly else 1.0
        rise = anomaly.temperature_rise_c if anomaly else 0.0
        profile = model.profile
        # A slow wobble so charts look alive; deterministic in time.
        wobble = 0.6 * math.sin(at_ms / 600_000 + (model.seed % 628) / 100)
        temperature = (
            profile.base_temperature_c + (profile.running_temperature_rise_c if running else 0) + wobble + rise
        )
        speed = model.spec.rated_speed * segment.speed_permille / 1000 * speed_factor if running else 0.0
        return Reading(
            at_ms=at_ms,
            state=segment.state,
            reason=segment.reason,
            units_total=units,
            defects_total=self._defects,
            speed=round(speed, 3),
            temperature=round(temperature, 2),
            run_ms_since_service=model.service_at(segment, at_ms),
            program=self._program_at(at_ms),
        )


@lru_cache(maxsize=8)
def _plant_machines(plant_file: Path | None, start_ms: int) -> dict[str, MachineModel]:
    plant = load_plant(plant_file) if plant_file else default_plant()
    return {model.spec.id: model for _, model in plant_models(plant, start_ms=start_ms)}


def configured_driver(machine: MachineConfig, config: GatewayConfig) -> SimulatedDriver:
    """The driver of a ``simulated`` entry of a gateway configuration: the plant's machine of that id, its
    simulation started at the configuration's clock start."""
    driver, clock = machine.driver, config.clock
    if not isinstance(driver, SimulatedDriverConfig) or clock is None:
        raise ConfigError(f"{machine.id}: not a simulated machine with a clock")
    models = _plant_machines(driver.plant, clock.start_ms)
    wanted = driver.machine or machine.id
    if wanted not in models:
        raise ConfigError(f"{machine.id}: the plant {driver.plant or '(built-in)'} has no machine {wanted}")
    model = models[wanted]
    if model.spec.type is not (machine.type or model.spec.type):
        raise ConfigError(f"{machine.id}: {wanted} is a {model.spec.type.value} machine, not {machine.type}")
    from gateway.drivers.build import machine_info  # here: it brings the protocol libraries, `simulate run` needs none

    plain = SimulatedDriver(model)
    return SimulatedDriver(model, info=machine_info(machine, plain.info))
