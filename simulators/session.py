"""Running simulated workshops through real gateways: the shared start/clock/plant wiring of `ftel gateway`,
`ftel simulate` and `ftel run`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ftel.settings import Settings
from gateway.runner import Gateway, GatewayTiming, Progress, build_gateway
from gateway.tracker import Origin
from simulators.clock import SimClock
from simulators.driver import SimulatedDriver
from simulators.machine import plant_models
from simulators.plant import Plant, default_plant, load_plant


def plant_from_settings(settings: Settings) -> Plant:
    path = settings.simulation.plant
    return load_plant(path) if path else default_plant(settings.site)


@dataclass(frozen=True, slots=True)
class SimulationRun:
    plant: Plant
    start_ms: int
    end_ms: int | None
    clock: SimClock

    @property
    def first_read_ms(self) -> int:
        """A gateway without a checkpoint watches from the simulation's start (the ledger's start too); one
        with a checkpoint (restarted) resumes from it."""
        return self.start_ms

    def timing(self, settings: Settings) -> GatewayTiming:
        s = settings.simulation
        return GatewayTiming(
            window_ms=s.window_s * 1000,
            telemetry_interval_ms=s.telemetry_interval_s * 1000,
            heartbeat_interval_ms=s.heartbeat_interval_s * 1000,
            tick_s=s.tick_s,
        )

    def gateway(self, settings: Settings, workshop_id: str) -> Gateway:
        workshop = self.plant.workshop(workshop_id)
        drivers = [
            SimulatedDriver(model)
            for _, model in plant_models(self.plant, start_ms=self.start_ms, workshop=workshop_id)
        ]
        return build_gateway(
            settings,
            Origin(self.plant.site, workshop.id, workshop.gateway_id),
            drivers,
            now_ms=self.clock.now_ms,
            timing=self.timing(settings),
        )


def run_gateways(
    run: SimulationRun,
    settings: Settings,
    stop: threading.Event,
    *,
    workshops: list[str] | None = None,
    on_progress: Callable[[str, Progress], None] | None = None,
) -> dict[str, Progress]:
    """Each workshop's gateway in its own thread until ``end_ms`` or ``stop``; returns final progress."""
    chosen = workshops or [w.id for w in run.plant.workshops]
    results: dict[str, Progress] = {}
    errors: list[BaseException] = []

    def one(workshop_id: str) -> None:
        try:
            gateway = run.gateway(settings, workshop_id)
            report = (lambda p: on_progress(workshop_id, p)) if on_progress else None
            results[workshop_id] = gateway.run(
                stop, end_ms=run.end_ms, first_read_ms=run.first_read_ms, on_progress=report
            )
        except BaseException as error:  # surfaced to the caller below; one thread's failure stops the run
            errors.append(error)
            stop.set()

    threads = [threading.Thread(target=one, args=(w,), name=f"gateway-{w}", daemon=True) for w in chosen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
