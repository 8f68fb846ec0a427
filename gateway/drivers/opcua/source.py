"""One machine on an OPC UA server (asyncua's client): one session per machine; every signal read in one Read
request; a subscription on the state signals, where the server offers one, to learn of a change before the next
poll.

At each connection the machine's nodes are found once: the machine under ``Objects/Machines`` and its building
blocks by type (machinery.py), the signals given as browse paths from the machine resolved in one
TranslateBrowsePathsToNodeIds request, the ones given as NodeIds taken as they are. asyncua is translated in this
package and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from asyncua import Client, Node, ua
from asyncua.common.subscription import DataChangeNotif, Subscription

from gateway.config import ITEM_STATE, OPERATION_MODE, OpcUaDriver, OpcUaMap, Signal
from gateway.drivers.errors import SourceError
from gateway.drivers.opcua.machinery import (
    ITEM_STATE_IDS,
    MACHINERY_URI,
    OPERATION_MODE_IDS,
    Child,
    building_blocks,
    children,
    find_machine,
    plain,
    state_name,
)
from gateway.drivers.opcua.security import secure
from gateway.opcua_paths import Step, parse_path
from gateway.signals import RawValue, Sample

log = logging.getLogger(__name__)

# Servers cap a session's lifetime without requests (asyncua's at 10 minutes); polls keep it alive anyway.
SESSION_TIMEOUT_MS = 600_000
# Signals whose change can change the state: what a subscription watches.
STATE_SIGNALS = (Signal.RUN, Signal.SETUP, Signal.MAINTENANCE, Signal.FAULT_CODE, Signal.STATE_CODE)


def resolve(text: str, namespaces: list[str]) -> ua.NodeId:
    """A NodeId string (``ns=…;`` or ``nsu=<uri>;``) as this server numbers its namespaces."""
    try:
        node_id = ua.NodeId.from_string(text)
    except (ValueError, ua.UaStringParsingError) as error:
        raise SourceError(f"{text!r} is not a NodeId") from error
    uri = getattr(node_id, "NamespaceUri", None)
    if not uri:
        return ua.NodeId(node_id.Identifier, node_id.NamespaceIndex, node_id.NodeIdType)
    if uri not in namespaces:
        raise SourceError(f"the server has no namespace {uri} (it has {', '.join(namespaces)})")
    return ua.NodeId(node_id.Identifier, namespaces.index(uri), node_id.NodeIdType)


def qualified(step: Step, namespaces: list[str]) -> ua.QualifiedName:
    """A path step as this server numbers its namespaces."""
    if isinstance(step.namespace, int):
        return ua.QualifiedName(step.name, step.namespace)
    if step.namespace not in namespaces:
        raise SourceError(f"step {step.describe()}: the server has no namespace {step.namespace}")
    return ua.QualifiedName(step.name, namespaces.index(step.namespace))


def browse_path(start: ua.NodeId, names: list[ua.QualifiedName]) -> ua.BrowsePath:
    elements = [
        ua.RelativePathElement(
            ReferenceTypeId=ua.NodeId(ua.ObjectIds.HierarchicalReferences),
            IsInverse=False,
            IncludeSubtypes=True,
            TargetName=name,
        )
        for name in names
    ]
    return ua.BrowsePath(StartingNode=start, RelativePath=ua.RelativePath(Elements=elements))


async def translate(client: Client, start: ua.NodeId, paths: list[list[ua.QualifiedName]]) -> list[ua.NodeId | None]:
    """Each path's target (None where the server found none), in one TranslateBrowsePathsToNodeIds request."""
    if not paths:
        return []
    results = await client.uaclient.translate_browsepaths_to_nodeids([browse_path(start, p) for p in paths])
    out: list[ua.NodeId | None] = []
    for result in results:
        good = result.StatusCode.is_good() and result.Targets
        out.append(plain(result.Targets[0].TargetId) if good else None)
    return out


async def explain_path(client: Client, machine: Child, names: list[ua.QualifiedName]) -> str:
    """Where a path stops resolving, and what is there instead (only asked after a failure)."""
    prefixes = [names[:n] for n in range(1, len(names))]
    depth, reached = 0, machine.node_id
    for target in await translate(client, machine.node_id, prefixes):
        if target is None:
            break
        depth, reached = depth + 1, target
    at = "/".join([machine.describe(), *(n.to_string() for n in names[:depth])])
    failed = names[depth]
    found = ", ".join(c.describe() for c in await children(client, reached)) or "nothing"
    return f"no {failed.to_string()} under {at} (it holds {found})"


class OpcUaSource:
    def __init__(
        self, machine_id: str, driver: OpcUaDriver, opcua: OpcUaMap, *, timeout_s: float, publish_s: float
    ) -> None:
        """``timeout_s``: one request's time limit; ``publish_s``: the subscription's publishing interval (both
        wall seconds)."""
        self._machine_id = machine_id
        self._publish_s = publish_s
        self._driver = driver
        self._map = opcua
        self._timeout_s = timeout_s
        self._browse_name = driver.browse_name or machine_id
        self._client: Client | None = None
        self._nodes: list[tuple[str, Node]] = []
        self._machinery_index = -1
        self._subscription: Subscription | None = None
        self._paths = {
            signal: parse_path(spec.path, opcua.namespaces)
            for signal, spec in opcua.signals.items()
            if spec.path is not None
        }

    @property
    def where(self) -> str:
        wanted = self._driver.identification
        return f"{self._driver.endpoint} ({', '.join(f'{k}={v}' for k, v in wanted.items()) or self._browse_name})"

    @property
    def _needs_machine(self) -> bool:
        return self._map.machinery or bool(self._paths) or bool(self._driver.identification)

    async def connect(self) -> None:
        await self.close()
        client = Client(self._driver.endpoint, timeout=self._timeout_s)
        client.session_timeout = SESSION_TIMEOUT_MS
        self._client = client
        try:
            await secure(client, self._driver.security, f"{self._machine_id}: {self._driver.endpoint}")
            await client.connect()
            self._nodes = await self._find_nodes(client, await client.get_namespace_array())
        except (ua.UaError, OSError, TimeoutError) as error:
            raise SourceError(f"{self._machine_id}: cannot connect to {self.where}: {error}") from error

    async def _find_nodes(self, client: Client, namespaces: list[str]) -> list[tuple[str, Node]]:
        nodes: list[tuple[str, Node]] = []
        machine: Child | None = None
        if self._needs_machine:
            machine = await find_machine(
                client,
                namespaces,
                machine_id=self._machine_id,
                browse_name=self._browse_name,
                wanted=self._driver.identification,
            )
            self._browse_name = machine.browse_name.Name  # what {machine} in a node stands for
        if self._map.machinery:
            assert machine is not None
            self._machinery_index = namespaces.index(MACHINERY_URI)
            blocks = await building_blocks(client, namespaces, self._machine_id, machine)
            nodes += [
                (ITEM_STATE, client.get_node(blocks.item_state)),
                (OPERATION_MODE, client.get_node(blocks.operation_mode)),
            ]
        if self._paths:
            assert machine is not None
            nodes += await self._resolve_paths(client, namespaces, machine)
        for signal, spec in self._map.signals.items():
            if spec.node is not None:
                text = spec.node.replace("{machine}", self._browse_name)
                nodes.append((signal.value, client.get_node(resolve(text, namespaces))))
        return nodes

    async def _resolve_paths(self, client: Client, namespaces: list[str], machine: Child) -> list[tuple[str, Node]]:
        signals = list(self._paths)
        names = [[qualified(step, namespaces) for step in self._paths[s]] for s in signals]
        targets = await translate(client, machine.node_id, names)
        out: list[tuple[str, Node]] = []
        for signal, path, target in zip(signals, names, targets, strict=True):
            if target is None:
                why = await explain_path(client, machine, path)
                raise SourceError(f"{self._machine_id}: signal {signal.value}: {why}")
            out.append((signal.value, client.get_node(target)))
        return out

    async def read(self) -> Sample:
        client = self._client
        if client is None or not self._nodes:
            raise SourceError(f"{self._machine_id}: not connected to {self.where}")
        try:
            values = await client.read_attributes([node for _, node in self._nodes])
        except (ua.UaError, OSError) as error:
            raise SourceError(f"{self._machine_id}: read from {self.where} failed: {error}") from error
        sample: dict[str, RawValue] = {}
        for (name, _), value in zip(self._nodes, values, strict=True):
            status = value.StatusCode
            if status is not None and not status.is_good():
                # The server answers for a machine it cannot reach (an aggregating server): it does not answer.
                raise SourceError(f"{self._machine_id}: {name} is {status.name}")
            raw = value.Value.Value if value.Value is not None else None
            if name == ITEM_STATE:
                named = state_name(raw, ITEM_STATE_IDS, self._machinery_index)
            elif name == OPERATION_MODE:
                named = state_name(raw, OPERATION_MODE_IDS, self._machinery_index)
            elif name == Signal.PROGRAM.value and isinstance(raw, str):
                named = raw  # a program-name variable: the name is the value (docs/orders.md)
            else:
                number = _number(raw)
                if number is not None:
                    sample[name] = number
                continue
            if named is not None:
                sample[name] = named
        return sample

    async def watch(self, changed: Callable[[], None]) -> bool:
        client = self._client
        watched = [node for name, node in self._nodes if name in (ITEM_STATE, OPERATION_MODE, *STATE_SIGNALS)]
        if client is None or not watched:
            return False
        period_ms = max(10.0, self._publish_s * 1000)
        try:
            subscription = await client.create_subscription(period_ms, _Changed(changed))
            await subscription.subscribe_data_change(watched, sampling_interval=period_ms / 2)
        except ua.UaError as error:
            log.info("machine %s: %s offers no subscription (%s)", self._machine_id, self.where, error)
            return False
        self._subscription = subscription
        return True

    async def close(self) -> None:
        client, self._client = self._client, None
        self._nodes, self._subscription = [], None
        if client is None:
            return
        try:
            await client.disconnect()
        except (ua.UaError, OSError, TimeoutError):
            client.disconnect_socket()


class _Changed:
    """asyncua's subscription handler: any change of a watched state signal wakes the machine's poller."""

    def __init__(self, changed: Callable[[], None]) -> None:
        self._changed = changed

    def datachange_notification(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        self._changed()


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    return None
