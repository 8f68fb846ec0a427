"""An OPC UA server built as a vendor builds one, from models no one here wrote: the OPC Foundation's DI, IA and
Machinery nodesets (fetched by tests/reference/nodesets.py) and its Machinery example,
Opc.Ua.Machinery.Examples.NodeSet2.xml (shipped in tests/reference/, see its README), imported as published.
The example declares ``ExampleMachineType``: ``Identification`` (DI's namespace) and ``Components`` added by
HasAddIn, ``MachineryBuildingBlocks`` holding, by HasAddIn, ``1:MachineryItemState`` and
``1:MachineryOperationMode`` (browse names in the example's namespace, not Machinery's); and one instance of it,
``ExampleMachine01`` under ``Objects/Machines``, which stays there as the Foundation publishes it.

Our machines are instantiated from that imported type under ``Objects/Machines`` by asyncua, in the vendor's own
namespace (server-assigned numeric NodeIds), with vendor variables (fault code, piece counter, speed) added to
each, again with numeric NodeIds. The server runs on its own thread and loop; the test drives it with ``set``,
and every change is recorded with the wall time at which it was written (the truth the gateway's figures are
compared to).
"""

from __future__ import annotations

import asyncio
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from asyncua import Node, Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.drivers.opcua.machinery import (
    DEVICE_SET,
    DI_URI,
    ITEM_STATE_IDS,
    MACHINERY_URI,
    MACHINES_FOLDER,
    OPERATION_MODE_IDS,
)
from tests.reference.nodesets import nodeset

VENDOR_URI = "urn:ftel-test:cashmere-knitting-example"
MANUFACTURER = "Cixing (test)"  # every machine of ours: shared, so it tells none apart
EXAMPLE_URI = "http://opcfoundation.org/UA/Machinery_Example/"
EXAMPLE_MACHINE_TYPE = 1002  # ExampleMachineType, in the example's namespace
EXAMPLE_MACHINE = "ExampleMachine01"  # the example's own instance under Objects/Machines
NODESET_NS = "http://opcfoundation.org/UA/2011/03/UANodeSet.xsd"
T = TypeVar("T")
# Where a machine is referenced from: Objects/Machines (as OPC 40001-1 asks), DI's DeviceSet only, or both; or
# Objects/Machines with a separate DI device of the same serial number under DeviceSet (its controller, say).
Placement = Literal["Machines", "DeviceSet", "both", "twin"]


def _ids(names: dict[int, str]) -> dict[str, int]:
    return {name: ident for ident, name in names.items()}


ITEM_IDS, MODE_IDS = _ids(ITEM_STATE_IDS), _ids(OPERATION_MODE_IDS)


def without_design_tool_only(path: Path) -> str:
    """The nodeset without its ``DesignToolOnly`` nodes: OPC 10000-6 F.3 says a server does not load them (DI's
    have no parent, which asyncua's importer refuses)."""
    ET.register_namespace("", NODESET_NS)
    tree = ET.parse(path)
    root = tree.getroot()
    for element in list(root):
        if element.get("DesignToolOnly") == "true":
            root.remove(element)
    return ET.tostring(root, encoding="unicode")


@dataclass
class Change:
    machine: str
    at_s: float  # time.time() just after the server wrote it
    item_state: str | None = None
    operation_mode: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


class PasswordUsers(UserManager):  # type: ignore[misc]
    """Accept one user name and password (and, where given, one user certificate); refuse anonymous."""

    def __init__(self, users: dict[str, str], certificate_der: bytes | None = None) -> None:
        self._users = users
        self._certificate = certificate_der

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> Any:
        if username is not None and self._users.get(username) == password:
            return User(role=UserRole.User, name=username)
        if certificate is not None and self._certificate is not None:
            der = certificate if isinstance(certificate, bytes) else certificate.public_bytes(Encoding.DER)
            if der == self._certificate:
                return User(role=UserRole.User, name="certificate")
        return None


@dataclass
class SecurityOptions:
    certificate: Path  # the server's certificate (DER) and key (PEM)
    private_key: Path
    policies: list[ua.SecurityPolicyType]
    users: dict[str, str]
    user_certificate_der: bytes | None = None


class MachineryServer:
    """Six (or any number of) machines of one vendor type, built from the Foundation's nodesets."""

    def __init__(
        self,
        port: int,
        machines: list[str],
        *,
        security: SecurityOptions | None = None,
        browse_names: dict[str, str] | None = None,
        placed: dict[str, Placement] | None = None,
    ) -> None:
        """``machines``: the test's names for them, which are their browse names unless ``browse_names`` gives the
        vendor's; ``placed``: where each is referenced from (default Objects/Machines)."""
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/vendor/"
        self.machines = machines
        self.security = security
        self.browse_names = browse_names or {}
        self.placed = placed or {}
        self.changes: list[Change] = []
        self.vendor = self.machinery = self.di = self.example = 0
        self.nodes: dict[str, dict[str, Node]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="opcua-machinery-server", daemon=True)
        users = security.users if security else None
        manager = PasswordUsers(users, security.user_certificate_der) if users is not None and security else None
        self._server = Server(user_manager=manager)

    # -- running on the server's own loop ----------------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    def start(self) -> MachineryServer:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        try:
            self._call(self._server.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    async def _start(self) -> None:
        server = self._server
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("vendor knitting line controller (test)")
        if self.security is None:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        else:
            await server.load_certificate(str(self.security.certificate))
            await server.load_private_key(str(self.security.private_key))
            server.set_security_policy(self.security.policies)
        await server.import_xml(xmlstring=without_design_tool_only(nodeset("Opc.Ua.Di.NodeSet2.xml")))
        await server.import_xml(str(nodeset("Opc.Ua.IA.NodeSet2.xml")))
        await server.import_xml(str(nodeset("Opc.Ua.Machinery.NodeSet2.xml")))
        await server.import_xml(str(nodeset("Opc.Ua.Machinery.Examples.NodeSet2.xml")))
        namespaces = await server.get_namespace_array()
        self.machinery = namespaces.index(MACHINERY_URI)
        self.di = namespaces.index(DI_URI)
        self.example = namespaces.index(EXAMPLE_URI)
        self.vendor = await server.register_namespace(VENDOR_URI)
        machine_type = server.get_node(ua.NodeId(EXAMPLE_MACHINE_TYPE, self.example))
        folders = {
            "Machines": server.get_node(ua.NodeId(MACHINES_FOLDER, self.machinery)),
            "DeviceSet": server.get_node(ua.NodeId(DEVICE_SET, self.di)),
        }
        for index, name in enumerate(self.machines):
            placement = self.placed.get(name, "Machines")
            folder = folders["DeviceSet" if placement == "DeviceSet" else "Machines"]
            serial = f"SN-{4711 + index}"
            machine = await self._add_machine(folder, machine_type, name, serial=serial)
            if placement == "both":
                # One node, a DI device as well: DeviceSet holds it as a component, as DI's devices are held.
                await folders["DeviceSet"].add_reference(machine, ua.ObjectIds.HasComponent)
            if placement == "twin":
                # Another node: a DI device with the machine's serial number among its own properties.
                twin = await folders["DeviceSet"].add_object(
                    ua.NodeId(NamespaceIndex=self.vendor), f"{self.vendor}:{self.browse_names.get(name, name)} PLC"
                )
                await twin.add_property(
                    ua.NodeId(NamespaceIndex=self.vendor),
                    f"{self.di}:SerialNumber",
                    ua.Variant(serial, ua.VariantType.String),
                )
        await server.start()

    async def _share_add_ins(self, machine: Node) -> None:
        """Make the machine's ``MachineryBuildingBlocks`` reference the machine's own ``Identification`` and
        ``Components``, as the example's ExampleMachine01 does: asyncua's instantiation copies every child of an
        instance declaration, so the type's HasAddIn references from its building blocks to those two became
        second, separate copies."""
        blocks = await machine.get_child(f"{self.machinery}:MachineryBuildingBlocks")
        own = {(await c.read_browse_name()).to_string(): c for c in await machine.get_children(ua.ObjectIds.HasAddIn)}
        for copy in await blocks.get_children(ua.ObjectIds.HasAddIn):
            original = own.get((await copy.read_browse_name()).to_string())
            if original is not None:
                await self._server.delete_nodes([copy], recursive=True)
                await blocks.add_reference(original, ua.ObjectIds.HasAddIn, forward=True, bidirectional=True)

    async def _add_machine(self, folder: Node, machine_type: Node, name: str, *, serial: str) -> Node:
        v, m, x = self.vendor, self.machinery, self.example
        browse_name = f"{v}:{self.browse_names.get(name, name)}"
        machine = await folder.add_object(ua.NodeId(NamespaceIndex=v), browse_name, objecttype=machine_type.nodeid)
        await self._share_add_ins(machine)
        for prop, variant in (
            ("SerialNumber", ua.Variant(serial, ua.VariantType.String)),
            ("ProductInstanceUri", ua.Variant(f"{VENDOR_URI}:{serial}", ua.VariantType.String)),
            ("Manufacturer", ua.Variant(ua.LocalizedText(MANUFACTURER), ua.VariantType.LocalizedText)),
        ):
            node = await machine.get_child([f"{self.di}:Identification", f"{self.di}:{prop}"])
            await node.write_value(variant)
        nodes: dict[str, Node] = {}
        for key, block in (("item_state", "MachineryItemState"), ("operation_mode", "MachineryOperationMode")):
            current = await machine.get_child([f"{m}:MachineryBuildingBlocks", f"{x}:{block}", "0:CurrentState"])
            nodes[f"{key}.text"] = current
            nodes[f"{key}.id"] = await current.get_child(["0:Id"])
        # Vendor variables, with NodeIds the server numbers.
        alarm = await machine.add_object(ua.NodeId(NamespaceIndex=v), f"{v}:Alarm")
        counters = await machine.add_folder(ua.NodeId(NamespaceIndex=v), f"{v}:Counters")
        for key, parent, browse, variant in (
            ("fault_code", alarm, "Code", ua.VariantType.UInt16),
            ("units", counters, "Pieces", ua.VariantType.UInt32),
            ("speed", machine, "CarriageSpeed", ua.VariantType.Double),
        ):
            initial = 0.0 if variant is ua.VariantType.Double else 0
            nodes[key] = await parent.add_variable(
                ua.NodeId(NamespaceIndex=v), f"{v}:{browse}", ua.Variant(initial, variant)
            )
        self.nodes[name] = nodes
        await self._write_state(name, "NotExecuting", "Processing")
        return machine

    async def _write_state(self, name: str, item: str, mode: str) -> None:
        nodes, m = self.nodes[name], self.machinery
        for key, state, ids in (("item_state", item, ITEM_IDS), ("operation_mode", mode, MODE_IDS)):
            await nodes[f"{key}.id"].write_value(ua.Variant(ua.NodeId(ids[state], m), ua.VariantType.NodeId))
            await nodes[f"{key}.text"].write_value(ua.Variant(ua.LocalizedText(state), ua.VariantType.LocalizedText))

    async def _set(self, name: str, item: str | None, mode: str | None, values: dict[str, Any]) -> Change:
        nodes = self.nodes[name]
        variants = {"fault_code": ua.VariantType.UInt16, "units": ua.VariantType.UInt32, "speed": ua.VariantType.Double}
        # A fault code is written before the state it explains (as a controller sets it).
        for key, value in values.items():
            await nodes[key].write_value(ua.Variant(value, variants[key]))
        if item is not None or mode is not None:
            current_item = item or await self._read_state(name, "item_state")
            current_mode = mode or await self._read_state(name, "operation_mode")
            await self._write_state(name, current_item, current_mode)
        return Change(name, time.time(), item, mode, dict(values))

    async def _read_state(self, name: str, key: str) -> str:
        text = await self.nodes[name][f"{key}.text"].read_value()
        return str(text.Text)

    # -- what the test calls ----------------------------------------------------------------------------------

    def set(self, name: str, *, item: str | None = None, mode: str | None = None, **values: Any) -> Change:
        change = self._call(self._set(name, item, mode, values))
        self.changes.append(change)
        return change

    def node_ids(self, name: str) -> dict[str, str]:
        return {key: node.nodeid.to_string() for key, node in self.nodes[name].items()}
