"""Simulated gateways without services: the pure gateway core driven tick by tick as gateway/runner.py drives it
(first reading and metas, a birth once connected, reads and a heartbeat each tick, partial windows and a death at
a clean end), and the streams of several gateways merged as one subscriber receives them. Tests of the alert
engine over many plant histories use it: a 30-minute story takes milliseconds instead of minutes."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ftel.contract.models import GatewayStatus, Message
from ftel.plant.layout import Plant
from gateway.core import GatewayCore, GatewayTiming, SpoolCounts
from gateway.tracker import Origin
from simulators.driver import SimulatedDriver
from simulators.machine import plant_models

# A message and when the subscriber receives it, in simulated ms of the receiving world.
Arrival = tuple[int, Message]


@dataclass(frozen=True)
class GatewayRun:
    """One boot of a gateway: what it sent, in order, and its last will (what the broker publishes if it
    vanishes)."""

    messages: list[Message]
    will: GatewayStatus

    def arrivals(self, *, lag_ms: int = 0) -> list[Arrival]:
        return arrivals(self.messages, lag_ms=lag_ms)


def arrivals(messages: Iterable[Message], *, lag_ms: int = 0) -> list[Arrival]:
    """Each message of one gateway as it arrives: in the order sent, ``lag_ms`` after the gateway's own time
    (a slow or backlogged gateway lags the rest of the world)."""
    newest = 0
    out: list[Arrival] = []
    for message in messages:
        newest = max(newest, message.ts)
        out.append((newest + lag_ms, message))
    return out


def run_gateway(
    plant: Plant,
    workshop: str,
    *,
    start_ms: int,
    first_read_ms: int,
    end_ms: int,
    steps_ms: Iterable[int],
    timing: GatewayTiming,
    boot_id: int,
    clean_end: bool = True,
) -> GatewayRun:
    """A fresh gateway (no checkpoint) of ``plant`` simulated from ``start_ms``, watching from
    ``first_read_ms`` until ``end_ms`` in ticks of ``steps_ms`` (cycled); at the end it stops cleanly
    (partial windows, its own death) unless ``clean_end`` is false (it vanished: see ``GatewayRun.will``)."""
    ws = plant.workshop(workshop)
    drivers = {m.spec.id: SimulatedDriver(m) for _, m in plant_models(plant, start_ms=start_ms, workshop=workshop)}
    core = GatewayCore(
        Origin(plant.site, workshop, ws.gateway_id), [d.info for d in drivers.values()], timing, boot_id=boot_id
    )

    def read(at_ms: int) -> list[Message]:
        return list(core.observe(at_ms, {machine_id: d.read(at_ms) for machine_id, d in drivers.items()}))

    will = core.will(first_read_ms)
    out: list[Message] = [*read(first_read_ms), *core.metas(first_read_ms)]
    last, born = first_read_ms, False
    for step in itertools.cycle(steps_ms):
        if last >= end_ms:
            break
        now = min(end_ms, last + step)
        for at in core.read_times(last, now):
            out.extend(read(at))
        beat = core.heartbeat(last, now, uptime_ms=now - first_read_ms, spool=SpoolCounts(0, 0))
        if beat is not None:
            out.append(beat)
        last = now
        if not born:  # connected during the first tick: the birth re-states every machine after the reads
            out.append(core.birth())  # (a fresh start's metas are already on their way: gateway/runner.py)
            born = True
    if clean_end:
        out.extend([*core.close(end_ms), core.death(end_ms)])
    return GatewayRun(out, will)


def received(*streams: Sequence[Arrival]) -> list[Message]:
    """The streams merged by arrival; each keeps its own order, ties go to the stream given first."""
    keyed = [(at, index, position, m) for index, s in enumerate(streams) for position, (at, m) in enumerate(s)]
    return [m for *_, m in sorted(keyed, key=lambda k: k[:3])]
