"""InfluxDB line protocol encoding (pure). Escaping follows the InfluxDB 1.x/2.x reference, so no tag value or
field string can start a new field, tag or point (a tag that cannot be represented is refused).
Tags and fields are written in sorted order."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

FieldValue = float | int | bool | str

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
# Inside a quoted string only these two are escapes; a newline there is legal and kept as it is.
_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\"})
# Line protocol cannot carry these in measurements, tag keys or tag values at all.
_UNREPRESENTABLE = ("\n", "\r")


def _name(text: str, table: dict[int, str], what: str) -> str:
    if any(c in text for c in _UNREPRESENTABLE) or text.endswith("\\"):
        raise LineProtocolError(f"{what} {text[:80]!r} holds a line break or ends in a backslash")
    return text.translate(table)


class LineProtocolError(ValueError):
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
    parts = [_name(point.measurement, _MEASUREMENT_ESCAPES, "measurement")]
    for key in sorted(point.tags):
        value = point.tags[key]
        if value == "":
            continue  # InfluxDB drops empty tags; leaving them out keeps the series key stable
        parts.append(f",{_name(key, _KEY_ESCAPES, 'tag key')}={_name(value, _KEY_ESCAPES, 'tag value')}")
    fields = ",".join(f"{_name(k, _KEY_ESCAPES, 'field key')}={_field(point.fields[k])}" for k in sorted(point.fields))
    return f"{''.join(parts)} {fields} {point.time_ms}"


def encode_batch(points: list[Point]) -> bytes:
    return "\n".join(encode_point(p) for p in points).encode()
