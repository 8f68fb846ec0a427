"""A workshop's simulated machines on one OPC UA server (asyncua), modelled as OPC 40001-1 asks: each machine
under ``Objects/Machines`` with ``MachineryBuildingBlocks/MachineryItemState`` and ``…/MachineryOperationMode``
(``CurrentState`` and its ``Id``, the NodeIds the Machinery namespace fixes), and the vendor variables of
layout.py beside them. A line controller or an edge server that aggregates machines looks like this; one that
cannot reach a machine marks that machine's variables BadNoCommunication, which is how a silent machine shows.

Values are written when they change (checked every ``refresh_s`` wall seconds), stamped with the plant time as
their source timestamp; the writes of one machine's change are made without yielding, so a client's Read sees
the old or the new state, never a mix.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from asyncua import Node, Server, ua

from ftel.contract.states import MachineState
from gateway.config import Signal
from gateway.drivers.opcua import DI_URI, ITEM_STATE_IDS, MACHINERY_URI, MACHINES_FOLDER, OPERATION_MODE_IDS
from simulators.serve import layout
from simulators.serve.controller import Shown, SimulatedController

log = logging.getLogger(__name__)

# How our states show in the building blocks: (MachineryItemState, MachineryOperationMode).
BUILDING_BLOCKS: dict[MachineState, tuple[str, str]] = {
    MachineState.RUNNING: ("Executing", "Processing"),
    MachineState.IDLE: ("NotExecuting", "Processing"),
    MachineState.SETUP: ("NotExecuting", "Setup"),
    MachineState.MAINTENANCE: ("OutOfService", "Maintenance"),
    MachineState.DOWN: ("OutOfService", "Processing"),
    MachineState.OFFLINE: ("NotAvailable", "None"),
}
VARIANTS: dict[Signal, ua.VariantType] = {
    Signal.FAULT_CODE: ua.VariantType.UInt16,
    Signal.UNITS: ua.VariantType.UInt32,
    Signal.DEFECTS: ua.VariantType.UInt32,
    Signal.SPEED: ua.VariantType.Double,
    Signal.TEMPERATURE: ua.VariantType.Double,
    Signal.SERVICE_HOURS: ua.VariantType.Double,
    Signal.PROGRAM: ua.VariantType.String,
}
# Refresh: how often (wall seconds) the server looks for changed values.
REFRESH_S = 0.02


def _initial(variant: ua.VariantType) -> int | float | str:
    if variant is ua.VariantType.Double:
        return 0.0
    return "" if variant is ua.VariantType.String else 0


def _ids(names: dict[int, str]) -> dict[str, int]:
    return {name: ident for ident, name in names.items()}


class OpcUaWorkshopServer:
    def __init__(
        self,
        controllers: list[SimulatedController],
        *,
        host: str,
        port: int,
        now_ms: Callable[[], int],
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.controllers = controllers
        self.endpoint = f"opc.tcp://{host}:{port}/ftel/"
        self._now_ms = now_ms
        self._refresh_s = refresh_s
        self._server = Server()
        self._machinery = self._vendor = 0
        self._block_types: dict[str, ua.NodeId] = {}  # the building blocks' types (a client finds them by type)
        # machine id -> (name -> node id) of what the machine shows
        self._nodes: dict[str, dict[str, ua.NodeId]] = {}
        self._written: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        server = self._server
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("ftel simulated controllers")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        di = await server.register_namespace(DI_URI)
        machinery = self._machinery = await server.register_namespace(MACHINERY_URI)
        self._vendor = await server.register_namespace(layout.VENDOR_URI)
        types = server.nodes.base_object_type
        item_type = await types.add_object_type(
            ua.NodeId(1002, machinery), f"{machinery}:MachineryItemState_StateMachineType"
        )
        mode_type = await types.add_object_type(
            ua.NodeId(1008, machinery), f"{machinery}:MachineryOperationModeStateMachineType"
        )
        for parent, names in ((item_type, ITEM_STATE_IDS), (mode_type, OPERATION_MODE_IDS)):
            for ident, name in names.items():
                await parent.add_object(ua.NodeId(ident, machinery), f"{machinery}:{name}")
        folder = await server.nodes.objects.add_folder(ua.NodeId(MACHINES_FOLDER, machinery), f"{machinery}:Machines")
        self._block_types = {"MachineryItemState": item_type.nodeid, "MachineryOperationMode": mode_type.nodeid}
        for controller in self.controllers:
            await self._add_machine(folder, controller.machine_id, di)
        now = self._now_ms()
        for controller in self.controllers:  # a client that connects at once reads the machines, not defaults
            await self._show(controller, now)
        await server.start()
        self._task = asyncio.create_task(self._refresh(), name="opcua-refresh")

    async def _add_machine(self, folder: Node, machine_id: str, di: int) -> None:
        vendor, machinery = self._vendor, self._machinery
        machine = await folder.add_object(ua.NodeId(machine_id, vendor), f"{vendor}:{machine_id}")
        blocks = await machine.add_folder(ua.NodeId(f"{machine_id}.Blocks", vendor), f"{di}:MachineryBuildingBlocks")
        nodes: dict[str, ua.NodeId] = {}
        for block, initial, ids in (
            ("MachineryItemState", "NotExecuting", _ids(ITEM_STATE_IDS)),
            ("MachineryOperationMode", "Processing", _ids(OPERATION_MODE_IDS)),
        ):
            obj = await blocks.add_object(
                ua.NodeId(f"{machine_id}.{block}", vendor), f"{machinery}:{block}", objecttype=self._block_types[block]
            )
            current = await obj.add_variable(
                ua.NodeId(f"{machine_id}.{block}.CurrentState", vendor), "0:CurrentState", ua.LocalizedText(initial)
            )
            state_id = await current.add_property(
                ua.NodeId(f"{machine_id}.{block}.CurrentState.Id", vendor), "0:Id", ua.NodeId(ids[initial], machinery)
            )
            nodes[f"{block}.text"] = current.nodeid
            nodes[f"{block}.id"] = state_id.nodeid
        for signal, variant in VARIANTS.items():
            variable = await machine.add_variable(
                ua.NodeId(layout.node_id(machine_id, signal), vendor),
                f"{vendor}:{layout.NODE_NAMES[signal]}",
                ua.Variant(_initial(variant), variant),
            )
            nodes[signal.value] = variable.nodeid
        self._nodes[machine_id] = nodes
        self._written[machine_id] = {}

    def _values(self, shown: Shown) -> list[tuple[str, ua.Variant]]:
        """What the machine shows, in the order to write it: a fault code before the state that it explains,
        the state before a fault code that is cleared."""
        item, mode = BUILDING_BLOCKS[shown.state]
        item_id = ua.NodeId(_ids(ITEM_STATE_IDS)[item], self._machinery)
        mode_id = ua.NodeId(_ids(OPERATION_MODE_IDS)[mode], self._machinery)
        states = [
            ("MachineryItemState.id", ua.Variant(item_id, ua.VariantType.NodeId)),
            ("MachineryItemState.text", ua.Variant(ua.LocalizedText(item), ua.VariantType.LocalizedText)),
            ("MachineryOperationMode.id", ua.Variant(mode_id, ua.VariantType.NodeId)),
            ("MachineryOperationMode.text", ua.Variant(ua.LocalizedText(mode), ua.VariantType.LocalizedText)),
        ]
        fault = [(Signal.FAULT_CODE.value, ua.Variant(shown.fault_code, ua.VariantType.UInt16))]
        ordered = [*fault, *states] if shown.fault_code else [*states, *fault]
        bits = 1 << layout.COUNTER_BITS_OPCUA
        return [
            *ordered,
            (Signal.UNITS.value, ua.Variant(shown.units % bits, ua.VariantType.UInt32)),
            (Signal.DEFECTS.value, ua.Variant(shown.defects % bits, ua.VariantType.UInt32)),
            (Signal.SPEED.value, ua.Variant(float(shown.speed), ua.VariantType.Double)),
            (Signal.TEMPERATURE.value, ua.Variant(float(shown.temperature), ua.VariantType.Double)),
            (Signal.SERVICE_HOURS.value, ua.Variant(round(shown.service_hours, 4), ua.VariantType.Double)),
            (Signal.PROGRAM.value, ua.Variant(shown.program_name, ua.VariantType.String)),
        ]

    async def _show(self, controller: SimulatedController, now: int) -> None:
        nodes, written = self._nodes[controller.machine_id], self._written[controller.machine_id]
        shown = controller.at(now)
        if written.get("shown") == shown:
            return
        stamp = datetime.fromtimestamp(now / 1000, UTC)
        if not shown.answering:
            if written.get("answering", True):
                bad = ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadNoCommunication), SourceTimestamp=stamp)
                for node in nodes.values():
                    await self._server.write_attribute_value(node, bad)
                written.clear()
                written["answering"] = False
            return
        written["answering"] = True
        written["shown"] = shown
        for name, variant in self._values(shown):
            if written.get(name) != variant.Value:
                await self._server.write_attribute_value(nodes[name], ua.DataValue(variant, SourceTimestamp=stamp))
                written[name] = variant.Value

    async def _refresh(self) -> None:
        while True:
            now = self._now_ms()
            for controller in self.controllers:
                await self._show(controller, now)
            await asyncio.sleep(self._refresh_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._server.stop()
