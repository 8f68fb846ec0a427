"""The controller's program through the simulated protocol servers: knitting machines served as Modbus TCP
controllers (the program number in a holding register, computed at the moment of the request) and as OPC UA
controllers (a program-name String variable), read by the gateway's own Modbus and OPC UA sources from the
configuration the servers hand out, interpreted by its signal interpreter: the reading's program is the simulated
style's, and the orders file resolves it to that style, before and after each change (a few seconds of wall
time: the plant time is set, not waited for)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from ftel.plant.layout import Plant, default_plant
from ftel.stack import free_port
from gateway.config import GatewayConfig
from gateway.drivers.build import source_for
from gateway.signals import SignalInterpreter
from simulators.jobs import default_order_book, simulated_job_changes
from simulators.machine import plant_models
from simulators.serve import layout
from simulators.serve.controller import SimulatedController
from simulators.serve.faults import Faults
from simulators.serve.modbus import ModbusMachineServer
from simulators.serve.opcua import OpcUaWorkshopServer
from simulators.serve.run import PollSettings

pytestmark = pytest.mark.integration

START = int(datetime(2026, 11, 13, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
END = START + 12 * 3_600_000
BOOK = default_order_book()
MACHINES = ("KNIT-001", "KNIT-002", "KNIT-003")


def _plant() -> Plant:
    plant = default_plant()
    knit = plant.workshop("knit")
    chosen = tuple(m for m in knit.machines if m.id in MACHINES)
    return Plant(site=plant.site, seed=plant.seed, workshops=(knit.model_copy(update={"machines": chosen}),))


def _config(plant: Plant, protocol: str, addresses: dict[str, dict[str, object]]) -> GatewayConfig:
    knit = plant.workshops[0]
    return layout.gateway_config(
        protocol=protocol,
        site=plant.site,
        workshop=knit.id,
        gateway_id=knit.gateway_id,
        machines=[(spec, addresses[spec.id]) for spec in knit.machines],
        clock={"start_ms": START, "speedup": 1.0, "anchor_ms": START},
        poll=PollSettings(timeout_s=2.0).fields(),
    )


def _style_changes(plant: Plant) -> dict[str, list[tuple[int, str]]]:
    """Per machine, (when, style) at each change of style in the 12 hours."""
    out: dict[str, list[tuple[int, str]]] = {}
    for _, model in plant_models(plant, start_ms=START):
        changes = out.setdefault(model.spec.id, [])
        for change in simulated_job_changes(model, BOOK, end_ms=END, window_ms=60_000):
            if not changes or changes[-1][1] != change.job.style:
                changes.append((change.at_ms, change.job.style))
    return out


def test_a_modbus_controllers_program_register_reads_as_its_style_before_and_after_each_change() -> None:
    plant = _plant()
    expected = _style_changes(plant)
    now = [START]
    controllers = [
        SimulatedController(model, end_ms=END, faults=Faults(), orders=BOOK)
        for _, model in plant_models(plant, start_ms=START)
    ]

    async def run() -> list[tuple[str, int, str | None]]:
        servers = [
            ModbusMachineServer(c, host="127.0.0.1", port=free_port(), now_ms=lambda: now[0], time_scale=1.0)
            for c in controllers
        ]
        for server in servers:
            await server.start()
        try:
            addresses = {
                s.controller.machine_id: {"host": s.host, "port": s.port, "unit_id": layout.MODBUS_UNIT}
                for s in servers
            }
            config = _config(plant, "modbus", addresses)
            seen: list[tuple[str, int, str | None]] = []
            moments = sorted(
                {(t, m) for m, changes in expected.items() for at, _ in changes[1:4] for t in (at - 1, at)}
            )
            sources = {}
            for machine in config.machines:
                model = config.models[machine.model]
                source, _ = source_for(machine, model, time_scale=1.0)
                await source.connect()
                sources[machine.id] = (source, SignalInterpreter(model))
            for t, machine_id in moments:
                now[0] = t
                source, interpreter = sources[machine_id]
                reading, refused = interpreter.interpret(t, await source.read())
                assert refused == []
                assert reading is not None
                seen.append((machine_id, t, reading.program))
            for source, _ in sources.values():
                await source.close()
            return seen
        finally:
            for server in servers:
                await server.stop()

    seen = asyncio.run(run())
    assert len(seen) >= 6  # three machines, their style changes in twelve hours: each read just before and at it
    for machine_id, t, program in seen:
        style = next(s for at, s in reversed(expected[machine_id]) if at <= t)
        assert program is not None
        found = BOOK.style_for_text(program)
        assert found is not None
        assert (machine_id, t, found.id) == (machine_id, t, style)


def test_an_opcua_controllers_program_name_reads_as_its_style() -> None:
    plant = _plant()
    expected = _style_changes(plant)
    controllers = [
        SimulatedController(model, end_ms=END, faults=Faults(), orders=BOOK)
        for _, model in plant_models(plant, start_ms=START)
    ]

    async def run() -> dict[str, str | None]:
        server = OpcUaWorkshopServer(controllers, host="127.0.0.1", port=free_port(), now_ms=lambda: START)
        await server.start()
        try:
            config = _config(plant, "opcua", {c.machine_id: {"endpoint": server.endpoint} for c in controllers})
            programs: dict[str, str | None] = {}
            for machine in config.machines:
                model = config.models[machine.model]
                source, _ = source_for(machine, model, time_scale=1.0)
                await source.connect()
                reading, refused = SignalInterpreter(model).interpret(START, await source.read())
                await source.close()
                assert refused == []
                assert reading is not None
                programs[machine.id] = reading.program
            return programs
        finally:
            await server.stop()

    programs = asyncio.run(run())
    names = {m: BOOK.style(changes[0][1]).program_name for m, changes in expected.items()}  # type: ignore[union-attr]
    assert programs == names
    assert all(BOOK.style_for_text(p or "") is not None for p in programs.values())
