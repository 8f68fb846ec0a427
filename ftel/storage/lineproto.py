"""InfluxDB line protocol encoding (pure). Escaping follows the InfluxDB 1.x/2.x reference, so no tag value or
field string can start a new field, tag or point (a tag that cannot be represented is refused).
Tags and fields are written in sorted order."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ftel.storage.errors import StorageError

FieldValue = float | int | bool | str
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
# Inside a quoted string only these two are escapes; a newline there is legal and kept as it is.
_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\"})
# Names made only of these need no escaping: every id of the contract, every field name of the schema. The
# check is cheaper than a cache at a county's fleet, whose tag values outnumber any cache (hot path).
_PLAIN = re.compile(r"[A-Za-z0-9_.:/+-]*")


# Measurement names, tag keys and field keys come from the schema: few, and repeated on every line, so each is
# escaped once. Tag values (machine ids: as many as the fleet) are checked each time instead.
_KEYS: dict[tuple[str, str], str] = {}
_MAX_KEYS = 10_000


def _key(text: str, table: dict[int, str], what: str) -> str:
    found = _KEYS.get((what, text))
    if found is None:
        found = _name(text, table, what)
        if len(_KEYS) < _MAX_KEYS:
            _KEYS[(what, text)] = found
    return found


def _name(text: str, table: dict[int, str], what: str) -> str:
    if _PLAIN.fullmatch(text):
        return text
    # Line protocol cannot carry a line break in a measurement, tag key or tag value at all.
    if "\n" in text or "\r" in text or text.endswith("\\"):
        raise LineProtocolError(f"{what} {text[:80]!r} holds a line break or ends in a backslash")
    return text.translate(table)


class LineProtocolError(StorageError, ValueError):
    """A point cannot be encoded (no fields, a non-finite float, an empty tag)."""


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ms: int


def _field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise LineProtocolError(f"integer field value {value} does not fit InfluxDB's 64-bit integers")
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError(f"field value {value} is not finite")
        return repr(value)
    return '"' + value.translate(_STRING_ESCAPES) + '"'


def encode_point(point: Point) -> str:
    """One line, timestamp in milliseconds (write with precision=ms)."""
    if not point.fields:
        raise LineProtocolError(f"point {point.measurement!r} has no fields")
    parts = [_key(point.measurement, _MEASUREMENT_ESCAPES, "measurement")]
    tags = point.tags
    for key in sorted(tags):
        value = tags[key]
        if value == "":
            continue  # InfluxDB drops empty tags; leaving them out keeps the series key stable
        parts.append(f",{_key(key, _KEY_ESCAPES, 'tag key')}={_name(value, _KEY_ESCAPES, 'tag value')}")
    fields = point.fields
    encoded = ",".join(f"{_key(k, _KEY_ESCAPES, 'field key')}={_field(fields[k])}" for k in sorted(fields))
    return f"{''.join(parts)} {encoded} {point.time_ms}"


def encode_batch(points: list[Point]) -> bytes:
    return "\n".join(encode_point(p) for p in points).encode()
