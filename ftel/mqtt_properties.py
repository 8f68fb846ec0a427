"""paho's MQTT 5 property tables, built once per process instead of once per packet.

paho-mqtt (2.2) makes a ``Properties`` object for every PUBLISH, PUBACK, SUBACK … it receives, and each one
builds its own copy of two constant tables (27 property names, their types and packets, with a list search per
entry), then walks the 27 names to delete attributes that a new object cannot have. On this machine that is
41 µs of every received message, with no property in it: half of what the bare client costs per message, paid
by the ingest and alert workers for each message they take and by the gateways for each PUBACK. The tables never
change after they are built and paho only reads them, so ``install`` has every object share one copy and look
names up in dictionaries (``tests/unit/test_mqtt_properties.py`` checks that what the objects decode, encode and
refuse is what paho's own code gives; ``bench/properties.py`` measures the cost).

``install`` changes paho's class for the whole process, once; if paho's constructor ever sets more than its
tables and packet type, it leaves paho as it is and says so in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

# paho's own, kept for the tests' comparison.
PAHO_METHODS: dict[str, Callable[..., Any]] = {
    name: getattr(Properties, name)
    for name in ("__init__", "clear", "isEmpty", "getIdentFromName", "getNameFromIdent", "unpack")
}
_TABLES = ("packetType", "types", "names", "properties")


def _shared_tables() -> dict[str, Any] | None:
    """paho's tables as its constructor builds them, or None if it builds anything else too."""
    sample = Properties.__new__(Properties)
    PAHO_METHODS["__init__"](sample, PacketTypes.PUBLISH)
    built = vars(sample)
    if set(built) != set(_TABLES):
        return None
    return {key: built[key] for key in _TABLES[1:]}


def install() -> bool:
    """Have paho's ``Properties`` share its tables (once per process); return whether they do."""
    if Properties.__init__ is not PAHO_METHODS["__init__"]:
        return True
    tables = _shared_tables()
    if tables is None:
        log.warning("paho-mqtt's Properties builds more than its tables: left as it is (slower per packet)")
        return False
    names: dict[str, int] = tables["names"]
    by_name = {name.replace(" ", ""): ident for name, ident in names.items()}
    # paho's getNameFromIdent returns the last name with the identifier (there is one each).
    by_ident = {ident: name for name, ident in names.items()}
    # A property is an instance attribute named without spaces; the class has none of those names itself.
    compressed = tuple(by_name)
    if any(hasattr(Properties, name) for name in compressed):
        log.warning("paho-mqtt's Properties has class attributes named as properties: left as it is")
        return False

    def __init__(self: Properties, packetType: int) -> None:
        vars(self).update(tables, packetType=packetType)

    def clear(self: Properties) -> None:
        present = vars(self)
        if len(present) == len(_TABLES):  # the tables alone: nothing to clear
            return
        for name in compressed:
            if name in present:
                delattr(self, name)

    def isEmpty(self: Properties) -> bool:
        present = vars(self)
        return not any(name in present for name in compressed)

    paho_unpack = PAHO_METHODS["unpack"]

    def unpack(self: Properties, buffer: bytes | bytearray) -> tuple[Properties, int]:
        # No property at all (a length of 0): what nearly every PUBLISH and PUBACK carries.
        if buffer and buffer[0] == 0:
            clear(self)
            return self, 1
        return paho_unpack(self, buffer)  # type: ignore[no-any-return]

    def getIdentFromName(self: Properties, compressedName: str) -> int:
        return by_name.get(compressedName, -1)

    def getNameFromIdent(self: Properties, identifier: int) -> str | None:
        return by_ident.get(identifier)

    for method in (__init__, clear, isEmpty, getIdentFromName, getNameFromIdent, unpack):
        setattr(Properties, method.__name__, method)
    return True
