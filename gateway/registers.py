"""Modbus registers → numbers (pure): data type, word order, byte order, one bit of a register.

Modbus itself only moves 16-bit registers, most significant byte first. Wider values take several registers,
and controllers disagree on their order: ``word_order: big`` puts the most significant register first (the
"ABCD" of vendor manuals), ``little`` the least significant first ("CDAB"); ``byte_order: little`` swaps the
two bytes inside each register ("BADC" / "DCBA").
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from gateway.config import REGISTERS_OF, DataType, Order, Register

_FORMATS: dict[DataType, str] = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}


def decode_words(words: Sequence[int], data_type: DataType, *, word_order: Order, byte_order: Order) -> int | float:
    """The raw value held by ``words`` (each 0…65535), before scale and offset."""
    count = REGISTERS_OF[data_type]
    if len(words) != count:
        raise ValueError(f"{data_type.value} takes {count} registers, got {len(words)}")
    if data_type is DataType.BOOL:
        return int(words[0] != 0)
    ordered = list(words) if word_order is Order.BIG else list(reversed(words))
    raw = b"".join(w.to_bytes(2, "big") for w in ordered)
    if byte_order is Order.LITTLE:
        raw = b"".join(raw[i + 1 : i + 2] + raw[i : i + 1] for i in range(0, len(raw), 2))
    (value,) = struct.unpack(_FORMATS[data_type], raw)
    return value  # type: ignore[no-any-return]


def decode(register: Register, words: Sequence[int]) -> int | float:
    """The raw value of ``register`` from its registers (or its bit, for coils and discrete inputs)."""
    if register.bit is not None:
        return (words[0] >> register.bit) & 1
    return decode_words(words, register.type, word_order=register.word_order, byte_order=register.byte_order)


def counter_bits(register: Register) -> int:
    """The width of a counter held in ``register``: where it wraps."""
    return register.wrap_bits or 16 * REGISTERS_OF[register.type]
