"""paho's property tables shared (ftel/mqtt_properties.py) against paho's own methods: for every packet type and
any properties, the same bytes, the same decoded attributes and the same refusals."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties

from ftel.mqtt_properties import PAHO_METHODS, install

assert install()


class PahoProperties(Properties):
    """The same class with paho's own methods, as before ``install``."""


for _name, _method in PAHO_METHODS.items():
    setattr(PahoProperties, _name, _method)

PACKET_TYPES = [t for t in range(1, len(PacketTypes.Names)) if PacketTypes.Names[t] != "reserved"]
TABLE = PahoProperties(PacketTypes.PUBLISH)
NAMES = {name.replace(" ", ""): ident for name, ident in TABLE.names.items()}
TEXT = st.text(alphabet=st.sampled_from("azAZ09 _-/.:纱线梳毛"), max_size=12)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "Byte": st.integers(0, 2),
    "Two Byte Integer": st.integers(0, 65_535),
    "Four Byte Integer": st.integers(0, 2**32 - 1),
    "Variable Byte Integer": st.integers(0, 268_435_455),
    "Binary Data": st.binary(max_size=12),
    "UTF-8 Encoded String": TEXT,
    "UTF-8 String Pair": st.tuples(TEXT, TEXT),
}


def value_for(name: str) -> st.SearchStrategy[Any]:
    kind = TABLE.types[TABLE.properties[NAMES[name]][0]]
    return VALUES[kind]


PROPERTIES = st.lists(st.sampled_from(sorted(NAMES)).flatmap(lambda n: st.tuples(st.just(n), value_for(n))), max_size=6)


def build(cls: type[Properties], packet_type: int, chosen: list[tuple[str, Any]]) -> tuple[Properties, list[str]]:
    """Set each property in turn; return the object and what each setting did ('ok' or the refusal)."""
    made = cls(packet_type)
    outcomes = []
    for name, value in chosen:
        try:
            setattr(made, name, value)
            outcomes.append("ok")
        except MQTTException as refusal:
            outcomes.append(str(refusal))
    return made, outcomes


@settings(max_examples=300, deadline=None)
@given(packet_type=st.sampled_from(PACKET_TYPES), chosen=PROPERTIES)
def test_the_shared_tables_build_pack_and_decode_as_paho_does(packet_type: int, chosen: list[tuple[str, Any]]) -> None:
    ours, our_outcomes = build(Properties, packet_type, chosen)
    theirs, their_outcomes = build(PahoProperties, packet_type, chosen)
    assert our_outcomes == their_outcomes
    assert (str(ours), ours.json(), ours.isEmpty()) == (str(theirs), theirs.json(), theirs.isEmpty())
    packed = theirs.pack()
    assert ours.pack() == packed

    decoded, decoded_by_paho = Properties(packet_type), PahoProperties(packet_type)
    assert decoded.unpack(packed)[1] == decoded_by_paho.unpack(packed)[1] == len(packed)
    assert decoded.json() == decoded_by_paho.json() == theirs.json()
    decoded.clear()
    decoded_by_paho.clear()
    assert decoded.isEmpty()
    assert decoded_by_paho.isEmpty()
    assert decoded.json() == {}


@pytest.mark.parametrize(
    "buffer",
    [b"", b"\x80", b"\x03\x21\x00", b"\x02\xff\x00", b"\x03\x21\x00\x14\x00", b"\x01\x02"],
    ids=["empty", "unfinished length", "short value", "unknown property", "more than its length", "truncated"],
)
def test_a_malformed_property_block_is_refused_as_paho_refuses_it(buffer: bytes) -> None:
    def outcome(cls: type[Properties]) -> str:
        try:
            made, used = cls(PacketTypes.PUBLISH).unpack(buffer)
        except Exception as refusal:
            return type(refusal).__name__
        return f"{made.json()} {used}"

    assert outcome(Properties) == outcome(PahoProperties)


def test_the_tables_are_built_once_and_the_lookups_agree_with_paho() -> None:
    first, second = Properties(PacketTypes.PUBLISH), Properties(PacketTypes.CONNACK)
    assert first.names is second.names
    assert first.properties is second.properties
    paho = PahoProperties(PacketTypes.PUBLISH)
    assert (first.names, first.properties, first.types) == (paho.names, paho.properties, paho.types)
    for name in [*NAMES, "NoSuchProperty"]:
        assert first.getIdentFromName(name) == paho.getIdentFromName(name)
        assert first.allowsMultiple(name) == paho.allowsMultiple(name)
    for ident in range(0, 50):
        assert first.getNameFromIdent(ident) == paho.getNameFromIdent(ident)
