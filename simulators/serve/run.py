"""``ftel simulate serve``: one workshop's simulated machines as Modbus TCP or OPC UA servers on loopback, and
the gateway configuration that reads them.

Time: the servers show each machine at the plant time of the simulation clock (simulators/clock.py), and the
configuration they write gives the gateway that same clock (``clock``: start, speed-up, anchor), so a reading
is stamped on the plant's clock, as the ledger is. The gateway reads one ``overrun`` past the simulation's end:
the machines hold still after it, so whatever happened before the end is seen.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ftel.plant.layout import Plant
from ftel.plant.orders import OrderBook
from ftel.stack import free_port
from simulators.clock import SimClock
from simulators.jobs import default_order_book
from simulators.machine import plant_models
from simulators.serve import layout
from simulators.serve.controller import SimulatedController
from simulators.serve.faults import Faults
from simulators.serve.modbus import ModbusMachineServer
from simulators.serve.opcua import OpcUaWorkshopServer

log = logging.getLogger(__name__)

Protocol = Literal["modbus", "opcua"]


@dataclass(frozen=True, slots=True)
class PollSettings:
    """What the written gateway configuration asks of each driver (plant seconds)."""

    interval_s: float = 1.0
    timeout_s: float | None = None
    offline_after: int = 2
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "poll_interval_s": self.interval_s,
            "offline_after": self.offline_after,
            "reconnect_min_s": self.reconnect_min_s,
            "reconnect_max_s": self.reconnect_max_s,
        }
        if self.timeout_s is not None:
            out["timeout_s"] = self.timeout_s
        return out


@dataclass(frozen=True, slots=True)
class ServeOptions:
    protocol: Protocol
    plant: Plant
    workshop: str
    start_ms: int
    end_ms: int | None
    clock: SimClock
    host: str = "127.0.0.1"
    port: int = 0  # Modbus: the first machine's port, the next ones follow; OPC UA: the server's; 0: free ports
    faults: Faults = field(default_factory=Faults)
    counter_start: int = 0
    poll: PollSettings = field(default_factory=PollSettings)
    overrun_ms: int = 60_000
    gateway_config: Path | None = None
    # The styles the knitting machines change between, shown as their program (default: the simulation's own).
    orders: OrderBook = field(default_factory=default_order_book)


class Served:
    """The running servers of one workshop."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        o = options
        self.controllers = [
            SimulatedController(model, end_ms=o.end_ms, faults=o.faults, counter_start=o.counter_start, orders=o.orders)
            for _, model in plant_models(o.plant, start_ms=o.start_ms, workshop=o.workshop)
        ]
        self.addresses: dict[str, dict[str, Any]] = {}
        self._modbus: list[ModbusMachineServer] = []
        self._opcua: OpcUaWorkshopServer | None = None

    async def start(self) -> None:
        o = self.options
        if o.protocol == "modbus":
            for index, controller in enumerate(self.controllers):
                port = o.port + index if o.port else free_port()
                server = ModbusMachineServer(
                    controller, host=o.host, port=port, now_ms=o.clock.now_ms, time_scale=o.clock.speedup
                )
                await server.start()
                self._modbus.append(server)
                self.addresses[controller.machine_id] = {"host": o.host, "port": port, "unit_id": layout.MODBUS_UNIT}
        else:
            self._opcua = OpcUaWorkshopServer(
                self.controllers, host=o.host, port=o.port or free_port(), now_ms=o.clock.now_ms
            )
            await self._opcua.start()
            for controller in self.controllers:
                self.addresses[controller.machine_id] = {"endpoint": self._opcua.endpoint}

    async def stop(self) -> None:
        for server in self._modbus:
            await server.stop()
        if self._opcua is not None:
            await self._opcua.stop()

    def gateway_config(self) -> dict[str, Any]:
        o = self.options
        workshop = o.plant.workshop(o.workshop)
        clock: dict[str, Any] = {
            "start_ms": o.start_ms,
            "speedup": o.clock.speedup,
            "anchor_ms": o.clock.anchor_wall_ms,
        }
        if o.end_ms is not None:
            clock["end_ms"] = o.end_ms + o.overrun_ms
        specs = {spec.id: spec for spec in workshop.machines}
        config = layout.gateway_config(
            protocol=o.protocol,
            site=o.plant.site,
            workshop=workshop.id,
            gateway_id=workshop.gateway_id,
            machines=[(specs[c.machine_id], self.addresses[c.machine_id]) for c in self.controllers],
            clock=clock,
            poll=o.poll.fields(),
        )
        return config.model_dump(mode="json", exclude_none=True, exclude_defaults=True)


async def serve(options: ServeOptions, *, on_ready: Any = None) -> None:
    """Serve until SIGINT or SIGTERM."""
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    # pymodbus logs every answer it could not send to a client that gave up (a silent controller's, by design).
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    served = Served(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await served.start()
    try:
        if options.gateway_config is not None:
            text = yaml.safe_dump(served.gateway_config(), sort_keys=False, allow_unicode=True)
            partial = options.gateway_config.with_name(options.gateway_config.name + ".partial")
            partial.write_text(text)
            partial.replace(options.gateway_config)  # whoever waits for the file finds it whole
        if on_ready is not None:
            on_ready(served)
        await stop.wait()
    finally:
        await served.stop()
