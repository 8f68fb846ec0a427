"""The OPC UA driver (asyncua): machinery.py finds machines and their OPC 40001-1 building blocks by type,
security.py secures the channel and checks the server's certificate, source.py reads one machine."""

from gateway.drivers.opcua.machinery import (
    DI_URI,
    ITEM_STATE_IDS,
    MACHINERY_URI,
    MACHINES_FOLDER,
    OPERATION_MODE_IDS,
    state_name,
)
from gateway.drivers.opcua.source import OpcUaSource, resolve

__all__ = [
    "DI_URI",
    "ITEM_STATE_IDS",
    "MACHINERY_URI",
    "MACHINES_FOLDER",
    "OPERATION_MODE_IDS",
    "OpcUaSource",
    "resolve",
    "state_name",
]
