"""OPC 40001-1 (OPC UA for Machinery) as servers ship it: a machine is found under ``Objects/Machines`` (or DI's
``DeviceSet``) by its browse name or by its identification, and its building blocks by *type* (the instances of
``MachineryItemState_StateMachineType`` and ``MachineryOperationModeStateMachineType``, or of their subtypes),
whatever namespace their browse names are in: the specification fixes the types, not the namespaces of the
instances' names (the OPC Foundation's own example declares ``1:MachineryItemState`` in its own namespace).

Each failure names what was found instead, so an integrator can tell a wrong name from a missing block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asyncua import Client, ua

from gateway.drivers.errors import SourceError

MACHINERY_URI = "http://opcfoundation.org/UA/Machinery/"
DI_URI = "http://opcfoundation.org/UA/DI/"
# NodeIds (numeric, in the Machinery namespace) that OPC 40001-1 fixes: the Machines folder, the two state
# machine types and each state.
MACHINES_FOLDER = 1001
ITEM_STATE_TYPE = 1002  # MachineryItemState_StateMachineType
OPERATION_MODE_TYPE = 1008  # MachineryOperationModeStateMachineType
ITEM_STATE_IDS = {5005: "NotAvailable", 5004: "OutOfService", 5007: "NotExecuting", 5006: "Executing"}
OPERATION_MODE_IDS = {5024: "None", 5025: "Maintenance", 5026: "Processing", 5027: "Setup"}
# DI's DeviceSet, where devices live (machines too, for some companion specifications).
DEVICE_SET = 5001
BUILDING_BLOCKS = "MachineryBuildingBlocks"
IDENTIFICATION = "Identification"
# Identification properties worth showing when a machine is not found (in this order).
SHOWN_IDENTIFICATION = ("SerialNumber", "ProductInstanceUri", "Manufacturer", "Model", "AssetId")


@dataclass(frozen=True, slots=True)
class Child:
    """One child of a node, as a Browse answers it."""

    node_id: ua.NodeId
    browse_name: ua.QualifiedName
    type_definition: ua.NodeId
    node_class: ua.NodeClass

    def describe(self) -> str:
        return str(self.browse_name.to_string())


def plain(node_id: ua.NodeId) -> ua.NodeId:
    """A browsed (expanded) NodeId as a plain one: the two never compare equal, even for the same node."""
    return ua.NodeId(node_id.Identifier, node_id.NamespaceIndex, node_id.NodeIdType)


async def children(client: Client, node_id: ua.NodeId) -> list[Child]:
    """Every hierarchical child (HasComponent, HasProperty, Organizes, HasAddIn…) of ``node_id``."""
    descriptions = await client.get_node(node_id).get_children_descriptions()
    return [Child(plain(d.NodeId), d.BrowseName, plain(d.TypeDefinition), d.NodeClass) for d in descriptions]


async def subtypes(client: Client, type_id: ua.NodeId) -> set[ua.NodeId]:
    """``type_id`` and every type derived from it, as this server defines them."""
    found, frontier = {type_id}, [type_id]
    while frontier:
        current = frontier.pop()
        refs = await client.get_node(current).get_references(ua.ObjectIds.HasSubtype, ua.BrowseDirection.Forward)
        for ref in refs:
            sub = plain(ref.NodeId)
            if sub not in found:
                found.add(sub)
                frontier.append(sub)
    return found


def text(value: Any) -> str:
    """A property value as text (a LocalizedText by its text)."""
    if isinstance(value, ua.LocalizedText):
        return value.Text or ""
    return "" if value is None else str(value)


async def identification(client: Client, machine: Child) -> dict[str, str]:
    """The machine's identification properties: those of its ``Identification`` object, else its own (a DI
    device carries them itself)."""
    kids = await children(client, machine.node_id)
    holder = next((c for c in kids if c.browse_name.Name == IDENTIFICATION), None)
    props = await children(client, holder.node_id) if holder else kids
    props = [p for p in props if p.node_class == ua.NodeClass.Variable]
    if not props:
        return {}
    values = await client.read_values([client.get_node(p.node_id) for p in props])
    return {p.browse_name.Name: text(v) for p, v in zip(props, values, strict=True)}


def _matches(found: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(found.get(key) == value for key, value in wanted.items())


async def _entry_points(client: Client, namespaces: list[str]) -> list[tuple[str, list[Child]]]:
    """What ``Objects/Machines`` holds, then what DI's ``DeviceSet`` holds (where the server has DI): OPC 40001-1
    references every machine from Machines, but DI (OPC 10000-100) references every device from DeviceSet, and
    some companion specifications put their machines there only."""
    found = [("Objects/Machines", await children(client, ua.NodeId(MACHINES_FOLDER, namespaces.index(MACHINERY_URI))))]
    if DI_URI in namespaces:
        found.append(("DeviceSet", await children(client, ua.NodeId(DEVICE_SET, namespaces.index(DI_URI)))))
    return found


async def find_machine(
    client: Client, namespaces: list[str], *, machine_id: str, browse_name: str, wanted: dict[str, str]
) -> Child:
    """The machine object: by browse name (any namespace) under ``Objects/Machines``, else under DI's
    ``DeviceSet``; or, with ``wanted`` identification properties, the one machine under either whose properties
    have those values (one under Machines comes before a DI device with the same under DeviceSet; several
    otherwise is an error)."""
    if MACHINERY_URI not in namespaces:
        raise SourceError(
            f"{machine_id}: the server has no {MACHINERY_URI} namespace, so no Objects/Machines (it has "
            f"{', '.join(namespaces)}); set opcua.machinery: false and give every signal as a NodeId"
        )
    entry_points = await _entry_points(client, namespaces)
    if not wanted:
        for _, held in entry_points:
            for machine in held:
                if machine.browse_name.Name == browse_name:
                    return machine
        where = " or ".join(
            f"{name} (it holds {', '.join(m.describe() for m in held) or 'nothing'})" for name, held in entry_points
        )
        raise SourceError(
            f"{machine_id}: no machine {browse_name!r} under {where}; set the driver's browse_name to one of "
            "them, or identification (e.g. SerialNumber) to find it by that"
        )
    # A machine that is a DI device as well is one node referenced from both: read it once.
    candidates = {c.node_id: c for _, held in entry_points for c in held}
    matching: list[Child] = []
    seen: dict[ua.NodeId, str] = {}
    for machine in candidates.values():
        found = await identification(client, machine)
        shown = ", ".join(f"{k}={found[k]!r}" for k in SHOWN_IDENTIFICATION if found.get(k))
        seen[machine.node_id] = f"{machine.describe()} ({shown or 'no identification'})"
        if _matches(found, wanted):
            matching.append(machine)
    wanted_text = ", ".join(f"{k}={v!r}" for k, v in wanted.items())
    if len(matching) > 1:
        # A machine under Objects/Machines is the machine (OPC 40001-1); a DI device of the same identification
        # under DeviceSet is its controller or another view of it, not a second machine.
        machines_folder = {c.node_id for c in entry_points[0][1]}
        among_machines = [m for m in matching if m.node_id in machines_folder]
        matching = among_machines if len(among_machines) == 1 else matching
    if len(matching) == 1:
        return matching[0]
    if matching:
        # Taking the first would read another machine's state under this one's id.
        raise SourceError(
            f"{machine_id}: {len(matching)} machines have {wanted_text}: "
            f"{'; '.join(seen[m.node_id] for m in matching)}; add a property that tells them apart (SerialNumber)"
        )
    raise SourceError(
        f"{machine_id}: no machine with {wanted_text} under Objects/Machines or DeviceSet; found: "
        f"{'; '.join(seen.values()) or 'nothing'}"
    )


@dataclass(frozen=True, slots=True)
class BuildingBlocks:
    """The ``CurrentState/Id`` variables of the machine's two state machines."""

    item_state: ua.NodeId
    operation_mode: ua.NodeId


async def _type_name(client: Client, type_id: ua.NodeId) -> str:
    if type_id.is_null():
        return "no type"
    try:
        return str((await client.get_node(type_id).read_browse_name()).to_string())
    except ua.UaError:
        return str(type_id.to_string())


async def _described(client: Client, kids: list[Child]) -> str:
    parts = [f"{c.describe()} ({await _type_name(client, c.type_definition)})" for c in kids]
    return ", ".join(parts) or "nothing"


async def _current_state_id(client: Client, machine_id: str, block: Child) -> ua.NodeId:
    """``CurrentState/Id`` of a state machine, the names matched in any namespace."""
    kids = await children(client, block.node_id)
    current = next((c for c in kids if c.browse_name.Name == "CurrentState"), None)
    if current is None:
        found = ", ".join(c.describe() for c in kids) or "nothing"
        raise SourceError(f"{machine_id}: {block.describe()} has no CurrentState (it holds {found})")
    props = await children(client, current.node_id)
    state_id = next((c for c in props if c.browse_name.Name == "Id"), None)
    if state_id is None:
        found = ", ".join(c.describe() for c in props) or "nothing"
        raise SourceError(
            f"{machine_id}: {block.describe()}/CurrentState has no Id, the NodeId of the state that the gateway "
            f"reads (it holds {found})"
        )
    return state_id.node_id


async def building_blocks(client: Client, namespaces: list[str], machine_id: str, machine: Child) -> BuildingBlocks:
    """Find the machine's MachineryItemState and MachineryOperationMode by their types: under its
    ``MachineryBuildingBlocks`` (any namespace), else among its own children."""
    machinery = namespaces.index(MACHINERY_URI)
    kids = await children(client, machine.node_id)
    folder = next((c for c in kids if c.browse_name.Name == BUILDING_BLOCKS), None)
    where = f"{machine.describe()}/{folder.describe()}" if folder else machine.describe()
    blocks = await children(client, folder.node_id) if folder else kids
    found: dict[str, Child] = {}
    for key, type_number, type_name in (
        ("item", ITEM_STATE_TYPE, "MachineryItemState_StateMachineType"),
        ("mode", OPERATION_MODE_TYPE, "MachineryOperationModeStateMachineType"),
    ):
        types = await subtypes(client, ua.NodeId(type_number, machinery))
        matching = [b for b in blocks if b.type_definition in types]
        if not matching:
            raise SourceError(
                f"{machine_id}: no instance of {type_name} (or a subtype) under {where}; found "
                f"{await _described(client, blocks)}. Is this a Machinery machine? Otherwise set "
                "opcua.machinery: false and map run / fault_code instead"
            )
        found[key] = matching[0]
    return BuildingBlocks(
        await _current_state_id(client, machine_id, found["item"]),
        await _current_state_id(client, machine_id, found["mode"]),
    )


def state_name(value: Any, ids: dict[int, str], machinery_index: int) -> str | None:
    """The Machinery state a ``CurrentState/Id`` value names (or None for a state we do not know)."""
    if isinstance(value, ua.NodeId) and value.NamespaceIndex == machinery_index:
        return ids.get(value.Identifier) if isinstance(value.Identifier, int) else None
    return None
