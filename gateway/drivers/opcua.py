"""OPC UA (asyncua's client): one session per machine; every signal read in one Read request; a subscription
on the state signals, where the server offers one, to learn of a change before the next poll.

Where the model reads the OPC 40001-1 building blocks (``opcua.machinery``), the machine is found under
``Objects/Machines`` by its browse name, and its ``MachineryBuildingBlocks/MachineryItemState`` and
``…/MachineryOperationMode`` state machines are read through ``CurrentState/Id``, the NodeId of the current
state, which the Machinery namespace fixes (names are localised, ids are not). asyncua is translated here and
nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from asyncua import Client, Node, ua
from asyncua.common.subscription import DataChangeNotif, Subscription

from gateway.config import ITEM_STATE, OPERATION_MODE, OpcUaDriver, OpcUaMap, Signal
from gateway.drivers.errors import SourceError
from gateway.signals import RawValue, Sample

log = logging.getLogger(__name__)

MACHINERY_URI = "http://opcfoundation.org/UA/Machinery/"
DI_URI = "http://opcfoundation.org/UA/DI/"
# NodeIds (numeric, in the Machinery namespace) that OPC 40001-1 gives the Machines folder and each state.
MACHINES_FOLDER = 1001
ITEM_STATE_IDS = {5005: "NotAvailable", 5004: "OutOfService", 5007: "NotExecuting", 5006: "Executing"}
OPERATION_MODE_IDS = {5024: "None", 5025: "Maintenance", 5026: "Processing", 5027: "Setup"}
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


def state_name(value: Any, ids: dict[int, str], machinery_index: int) -> str | None:
    """The Machinery state a ``CurrentState/Id`` value names (or None for a state we do not know)."""
    if isinstance(value, ua.NodeId) and value.NamespaceIndex == machinery_index:
        return ids.get(value.Identifier) if isinstance(value.Identifier, int) else None
    return None


class _Changed:
    """asyncua's subscription handler: any change of a watched state signal wakes the machine's poller."""

    def __init__(self, changed: Callable[[], None]) -> None:
        self._changed = changed

    def datachange_notification(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        self._changed()


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

    @property
    def where(self) -> str:
        return f"{self._driver.endpoint} ({self._browse_name})"

    async def connect(self) -> None:
        await self.close()
        client = Client(self._driver.endpoint, timeout=self._timeout_s)
        client.session_timeout = SESSION_TIMEOUT_MS
        self._client = client
        try:
            await client.connect()
            namespaces = await client.get_namespace_array()
            nodes: list[tuple[str, Node]] = []
            if self._map.machinery:
                nodes.extend(await self._building_blocks(client, namespaces))
            for signal, spec in self._map.signals.items():
                text = spec.node.replace("{machine}", self._browse_name)
                nodes.append((signal.value, client.get_node(resolve(text, namespaces))))
        except (ua.UaError, OSError) as error:
            raise SourceError(f"{self._machine_id}: cannot connect to {self.where}: {error}") from error
        self._nodes = nodes

    async def _building_blocks(self, client: Client, namespaces: list[str]) -> list[tuple[str, Node]]:
        missing = [uri for uri in (MACHINERY_URI, DI_URI) if uri not in namespaces]
        if missing:
            raise SourceError(
                f"{self._machine_id}: {self._driver.endpoint} has no {', '.join(missing)} namespace: no OPC UA for "
                "Machinery building blocks (set opcua.machinery: false and map the state signals)"
            )
        machinery, di = namespaces.index(MACHINERY_URI), namespaces.index(DI_URI)
        self._machinery_index = machinery
        folder = client.get_node(ua.NodeId(MACHINES_FOLDER, machinery))
        machine: Node | None = None
        for child in await folder.get_children():
            if (await child.read_browse_name()).Name == self._browse_name:
                machine = child
                break
        if machine is None:
            raise SourceError(f"{self._machine_id}: no machine {self._browse_name!r} under Objects/Machines")
        blocks = f"{di}:MachineryBuildingBlocks"
        try:
            item = await machine.get_child([blocks, f"{machinery}:MachineryItemState", "0:CurrentState", "0:Id"])
            mode = await machine.get_child([blocks, f"{machinery}:MachineryOperationMode", "0:CurrentState", "0:Id"])
        except ua.UaError as error:
            raise SourceError(
                f"{self._machine_id}: {self._browse_name} lacks MachineryItemState or MachineryOperationMode "
                f"CurrentState/Id: {error}"
            ) from error
        return [(ITEM_STATE, item), (OPERATION_MODE, mode)]

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


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    return None
