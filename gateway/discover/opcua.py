"""Browse an OPC UA server for `ftel gateway discover --opcua URL`: its machines under ``Objects/Machines``, their
identification and building blocks (found by type, as the driver finds them), and the variables under each
machine with their data types and a value, read once. Only Browse, Read and TranslateBrowsePaths are sent: nothing
is written to the device. The draft comes from opcua_draft.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from asyncua import Client, ua
from rich.console import Console
from rich.table import Table

from gateway.cli import quiet_libraries
from gateway.config import OpcUaSecurity
from gateway.discover import Progress
from gateway.discover.opcua_draft import DraftOptions, MachineFound, Variable, candidates, draft
from gateway.drivers.errors import SourceError
from gateway.drivers.opcua.machinery import (
    BUILDING_BLOCKS,
    IDENTIFICATION,
    MACHINERY_URI,
    MACHINES_FOLDER,
    Child,
    building_blocks,
    children,
    identification,
)
from gateway.drivers.opcua.security import secure
from gateway.drivers.opcua.source import SESSION_TIMEOUT_MS

console = Console(stderr=True, soft_wrap=True)
# How deep under a machine variables are looked for (Machine/Folder/Object/Variable is 3).
MAX_DEPTH = 4
# Subtrees whose variables are not signals: the nameplate and the state machines (read by type).
SKIPPED = frozenset({IDENTIFICATION, BUILDING_BLOCKS})


async def _type_name(client: Client, type_id: ua.NodeId, names: dict[ua.NodeId, str]) -> str:
    if type_id not in names:
        try:
            names[type_id] = (await client.get_node(type_id).read_browse_name()).Name or str(type_id)
        except ua.UaError:
            names[type_id] = type_id.to_string()
    return names[type_id]


async def _variables(client: Client, namespaces: list[str], root: Child, names: dict[ua.NodeId, str]) -> list[Variable]:
    """The variables under ``root`` (depth first, up to MAX_DEPTH), with their data types and values."""
    found: list[tuple[tuple[tuple[str, str], ...], Child]] = []
    frontier: list[tuple[tuple[tuple[str, str], ...], Child]] = [((), root)]
    while frontier:
        path, node = frontier.pop(0)
        for child in await children(client, node.node_id):
            name = child.browse_name
            if name.Name in SKIPPED:
                continue
            step = (*path, (namespaces[name.NamespaceIndex], name.Name))
            if child.node_class == ua.NodeClass.Variable:
                found.append((step, child))
            if len(step) < MAX_DEPTH and child.node_class in (ua.NodeClass.Object, ua.NodeClass.Variable):
                frontier.append((step, child))
    if not found:
        return []
    nodes = [client.get_node(c.node_id) for _, c in found]
    types = await client.read_attributes(nodes, ua.AttributeIds.DataType)
    values = await client.read_attributes(nodes)
    out = []
    for (path, _), data_type, value in zip(found, types, values, strict=True):
        type_id = data_type.Value.Value if data_type.Value is not None else None
        type_name = await _type_name(client, type_id, names) if isinstance(type_id, ua.NodeId) else "?"
        shown = value.Value.Value if value.Value is not None else None
        out.append(Variable(path, type_name, shown))
    return out


async def _machine(client: Client, namespaces: list[str], machine: Child, names: dict[ua.NodeId, str]) -> MachineFound:
    found = MachineFound(
        browse_name=machine.browse_name.Name,
        namespace=namespaces[machine.browse_name.NamespaceIndex],
        type_name=await _type_name(client, machine.type_definition, names),
        identification=await identification(client, machine),
    )
    try:
        await building_blocks(client, namespaces, found.browse_name, machine)
    except SourceError as error:
        found.blocks = str(error)
    found.variables = await _variables(client, namespaces, machine, names)
    return found


async def discover(
    endpoint: str, security: OpcUaSecurity, progress: Progress, *, timeout_s: float
) -> list[MachineFound]:
    """Every machine under ``Objects/Machines`` of the server at ``endpoint``."""
    client = Client(endpoint, timeout=timeout_s)
    client.session_timeout = SESSION_TIMEOUT_MS
    progress(f"connecting to {endpoint} ({security.policy.value}/{security.mode.value})")
    await secure(client, security, endpoint)
    try:
        await client.connect()
    except (ua.UaError, OSError, TimeoutError) as error:
        raise SourceError(f"cannot connect to {endpoint}: {error}") from error
    try:
        namespaces = await client.get_namespace_array()
        progress(f"namespaces: {', '.join(namespaces[1:])}")
        if MACHINERY_URI not in namespaces:
            raise SourceError(
                f"{endpoint} has no OPC UA for Machinery namespace, so no Objects/Machines to list: browse it with "
                "a generic client and write a model with opcua.machinery: false and NodeIds"
            )
        machines = await children(client, ua.NodeId(MACHINES_FOLDER, namespaces.index(MACHINERY_URI)))
        progress(f"{len(machines)} machine(s) under Objects/Machines")
        names: dict[ua.NodeId, str] = {}
        out = []
        for index, machine in enumerate(machines, 1):
            progress(f"[{index}/{len(machines)}] {machine.describe()}: identification, building blocks, variables")
            out.append(await _machine(client, namespaces, machine, names))
        return out
    finally:
        try:
            await client.disconnect()
        except (ua.UaError, OSError, TimeoutError):
            client.disconnect_socket()


def security_entry(security: OpcUaSecurity) -> dict[str, object] | None:
    """The driver's ``security`` as the draft writes it (secrets as their references, never their values)."""
    if security == OpcUaSecurity():
        return None
    return security.model_dump(mode="json", exclude_defaults=True, exclude_none=True)


def discover_command(
    endpoint: str, security: OpcUaSecurity, options: DraftOptions, *, out: Path | None, timeout_s: float
) -> int:
    """Browse, show what was found (stderr), print the draft (stdout, or write it to ``out``); 0 when some machine
    was found."""
    quiet_libraries()
    machines = asyncio.run(
        discover(endpoint, security, lambda line: console.print(f"[dim]…[/dim] {line}"), timeout_s=timeout_s)
    )
    table = Table(title=f"{endpoint}: machines under Objects/Machines")
    for column in ("machine", "type", "identification", "building blocks", "candidate signals"):
        table.add_column(column)
    for machine in machines:
        found = candidates(machine.variables)
        ident = ", ".join(f"{k}={v}" for k, v in machine.identification.items() if v and k in ("SerialNumber", "Model"))
        signals = "\n".join(
            f"{signal.value}: {v[0].name} ({v[0].data_type} = {v[0].value!r})" for signal, v in found.items()
        )
        table.add_row(
            machine.browse_name,
            machine.type_name,
            ident,
            "found" if machine.blocks is None else "[yellow]missing[/yellow]",
            signals,
        )
    console.print(table)
    text = draft(machines, options)
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        console.print(f"draft written to {out}; check it, then: ftel gateway probe --config {out}")
    return 0 if machines else 1
