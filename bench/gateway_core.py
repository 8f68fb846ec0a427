"""Benchmark (not a test): what the simulated gateways cost without the broker, per plant second.

A generated plant (`generate_plant(N)`, 500 machines per workshop, one gateway each, the default settings) runs
through real gateways (gateway/runner.py: core, trackers, spool and checkpoint on disk in a temp directory) driven
tick by tick on a fake clock (one tick every ``tick_s`` of plant time, as `ftel simulate run` ticks at real time)
as fast as they go, with a link that takes every message and acknowledges it at once (no broker, no paho, nothing
confirmed: as `bench/simulate.py` runs them, without ingest). Printed: the process's CPU seconds (user, system)
per plant second over ``--seconds`` after ``--warmup``, which is the cores the gateways alone need at real time,
and per message. CPU time, not wall time: a loaded machine changes it less than it changes bench/simulate.py's
figures (not nothing). Then the CPU time of the rounds (every gateway ticked once, as one thread of
`gateway/host.py` does) that cross a window edge, against the others: what holds back every machine's messages
at each edge. ``--power-safe`` runs the spools as a real gateway's (synchronous=FULL) instead of a
simulated one's (the settings' default).

    python bench/gateway_core.py [--machines 10000] [--warmup 30] [--seconds 120] [--power-safe]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftel.contract import Confirmation
from ftel.heap import freeze_start
from ftel.settings import Settings
from gateway.runner import Gateway
from gateway.tracker import Origin
from simulators.clock import SimClock
from simulators.driver import SimulatedDriver
from simulators.machine import plant_models
from simulators.plant import generate_plant
from simulators.session import SimulationRun

PER_WORKSHOP = 500
START_MS = 1_780_000_020_000 - 1_780_000_020_000 % 60_000


class TakesEverything:
    """A broker link that is always up and acknowledges every publication at once (GatewayLink)."""

    def __init__(self) -> None:
        self.published = 0
        self._pubacks = 0
        self._connects = 1

    def start(self, *, will: tuple[str, bytes], confirm_topic: str) -> None:
        return None

    def is_connected(self) -> bool:
        return True

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        self.published += 1
        self._pubacks += 1
        return True

    def take_connects(self) -> int:
        count, self._connects = self._connects, 0
        return count

    def take_pubacks(self) -> int:
        count, self._pubacks = self._pubacks, 0
        return count

    def take_confirmations(self) -> list[Confirmation]:
        return []

    def stop(self) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=10_000)
    parser.add_argument("--warmup", type=float, default=30.0, help="plant seconds not measured")
    parser.add_argument("--seconds", type=float, default=120.0, help="plant seconds measured")
    parser.add_argument("--power-safe", action="store_true", help="spools synced at every commit (a real gateway's)")
    args = parser.parse_args()
    settings = Settings()
    settings.simulation.spool_power_safe = args.power_safe
    plant = generate_plant(args.machines, site="bench", per_workshop=PER_WORKSHOP)
    run = SimulationRun(plant, START_MS, None, SimClock(START_MS, 1.0, START_MS))
    clock = [START_MS]
    links: list[TakesEverything] = []
    gateways: list[Gateway] = []
    with tempfile.TemporaryDirectory() as tmp:
        for workshop in plant.workshops:
            links.append(TakesEverything())
            drivers = [SimulatedDriver(m) for _, m in plant_models(plant, start_ms=START_MS, workshop=workshop.id)]
            gateways.append(
                Gateway(
                    Origin(plant.site, workshop.id, workshop.gateway_id),
                    drivers,
                    now_ms=lambda: clock[0],
                    timing=run.timing(settings, workshop.gateway_id),
                    link=links[-1],
                    spool_max_messages=settings.gateway.spool_max_messages,
                    state_dir=Path(tmp) / workshop.gateway_id,
                    spool_power_safe=settings.simulation.spool_power_safe,
                    monotonic=lambda: clock[0] / 1000,
                )
            )
        for gateway in gateways:
            gateway.begin(first_read_ms=START_MS)
        freeze_start()  # as gateway/host.py does once its gateways began
        tick_ms = round(settings.simulation.tick_s * 1000)

        window_ms = gateways[0].core.timing.window_ms
        # The CPU seconds of each round (every gateway ticked once, as gateway/host.py does in one thread),
        # apart for the rounds that cross a window edge: a long round holds back every machine's messages.
        edge_rounds: list[float] = []
        other_rounds: list[float] = []

        def ticks(seconds: float) -> None:
            for _ in range(round(seconds * 1000 / tick_ms)):
                crosses_edge = (clock[0] + tick_ms) // window_ms > clock[0] // window_ms
                clock[0] += tick_ms
                began = time.process_time()
                for gateway in gateways:
                    gateway.tick()
                (edge_rounds if crosses_edge else other_rounds).append(time.process_time() - began)

        ticks(args.warmup)
        edge_rounds.clear()
        other_rounds.clear()
        sent, before, wall = sum(link.published for link in links), os.times(), time.monotonic()
        ticks(args.seconds)
        after, wall = os.times(), time.monotonic() - wall
        sent = sum(link.published for link in links) - sent
    user, system = after.user - before.user, after.system - before.system
    cores = (user + system) / args.seconds
    print(
        f"{args.machines:,} machines, spools {'FULL' if args.power_safe else 'NORMAL'}: "
        f"{user + system:.2f} CPU s ({user:.2f} user, {system:.2f} system) over {args.seconds:g} plant s "
        f"(wall {wall:.1f} s) = {cores:.4f} cores at real time, {cores * 10_000 / args.machines:.4f} per 10,000 "
        f"machines; {sent:,} messages, {(user + system) / max(1, sent) * 1e6:.0f} µs each"
    )
    if edge_rounds and other_rounds:
        print(
            f"rounds of the one gateway thread: {len(edge_rounds)} across a window edge, CPU "
            f"{statistics.mean(edge_rounds) * 1000:,.0f} ms mean, {max(edge_rounds) * 1000:,.0f} ms max; "
            f"{len(other_rounds)} others, {statistics.mean(other_rounds) * 1000:,.1f} ms mean, "
            f"{max(other_rounds) * 1000:,.0f} ms max"
        )


if __name__ == "__main__":
    main()
