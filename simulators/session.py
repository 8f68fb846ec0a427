"""Running simulated workshops through real gateways: the shared start/clock/plant wiring of `ftel gateway`,
`ftel simulate` and `ftel run`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ftel.plant.calendar import Calendar
from ftel.plant.layout import Plant, default_plant, load_plant
from ftel.settings import Settings
from gateway import host
from gateway.core import close_phase_ms
from gateway.link_hub import LinkHub
from gateway.publisher import paho_link
from gateway.runner import Gateway, GatewayTiming, Progress, build_gateway
from gateway.tracker import Origin
from simulators.clock import SimClock
from simulators.driver import SimulatedDriver
from simulators.machine import plant_models


def plant_from_settings(settings: Settings) -> Plant:
    path = settings.simulation.plant
    return load_plant(path) if path else default_plant(settings.site)


@dataclass(frozen=True, slots=True)
class SimulationRun:
    plant: Plant
    start_ms: int
    end_ms: int | None
    clock: SimClock
    # The site's calendar when the settings name one: machines then work only in its planned time.
    calendar: Calendar | None = None

    @property
    def first_read_ms(self) -> int:
        """A gateway without a checkpoint watches from the simulation's start (the ledger's start too); one
        with a checkpoint (restarted) resumes from it."""
        return self.start_ms

    def timing(self, settings: Settings, gateway_id: str) -> GatewayTiming:
        s = settings.simulation
        return GatewayTiming(
            window_ms=s.window_s * 1000,
            telemetry_interval_ms=s.telemetry_interval_s * 1000,
            heartbeat_interval_ms=s.heartbeat_interval_s * 1000,
            tick_s=s.tick_s,
            telemetry_spread=settings.gateway.telemetry_spread,
            close_phase_ms=close_phase_ms(gateway_id, s.window_s * 1000, settings.gateway.close_phase_s),
        )

    def gateway(self, settings: Settings, workshop_id: str, *, hub: LinkHub | None = None) -> Gateway:
        """The workshop's gateway, its link on ``hub`` (the network thread of the process's links; None: a
        thread of its own)."""
        workshop = self.plant.workshop(workshop_id)
        drivers = [
            SimulatedDriver(model)
            for _, model in plant_models(
                self.plant, start_ms=self.start_ms, workshop=workshop_id, calendar=self.calendar
            )
        ]
        return build_gateway(
            settings,
            Origin(self.plant.site, workshop.id, workshop.gateway_id),
            drivers,
            now_ms=self.clock.now_ms,
            timing=self.timing(settings, workshop.gateway_id),
            power_safe=settings.simulation.spool_power_safe,
            link=paho_link(settings, workshop.gateway_id, hub=hub),
        )


def run_gateways(
    run: SimulationRun,
    settings: Settings,
    stop: threading.Event,
    *,
    workshops: list[str] | None = None,
    on_progress: Callable[[str, Progress], None] | None = None,
    on_built: Callable[[Sequence[Gateway]], None] | None = None,
) -> dict[str, Progress]:
    """The chosen workshops' gateways (all by default), driven by one thread and their links by another (one
    ``LinkHub``), until ``end_ms`` or ``stop``; returns each workshop's final progress. ``on_built`` gets the
    gateways before they start, so that whoever stops them can watch their drain (``unconfirmed``) or cut it short
    (``abandon_drain``)."""
    chosen = workshops or [w.id for w in run.plant.workshops]
    hub = LinkHub(name="mqtt-links")
    gateways = {run.gateway(settings, workshop_id, hub=hub): workshop_id for workshop_id in chosen}
    if on_built is not None:
        on_built(list(gateways))
    report = (lambda g, p: on_progress(gateways[g], p)) if on_progress else None
    finals = host.run_gateways(
        list(gateways),
        stop,
        tick_s=settings.simulation.tick_s,
        end_ms=run.end_ms,
        first_read_ms=run.first_read_ms,
        on_progress=report,
    )
    return {workshop_id: finals[g.origin.gateway_id] for g, workshop_id in gateways.items()}
