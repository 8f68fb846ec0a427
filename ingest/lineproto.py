"""InfluxDB line protocol encoding (pure). Escaping follows the InfluxDB 1.x/2.x reference, so no tag value or
field string can start a new field, tag or point. Tags and fields are written in sorted order."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

FieldValue = float | int | bool | str

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"})
_KEY_ESCAPES = str.maketrans(
    {",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\\": "\\\\"}
)
_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": r"\n", "\r": r"\r"})


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
    parts = [point.measurement.translate(_MEASUREMENT_ESCAPES)]
    for key in sorted(point.tags):
        value = point.tags[key]
        if value == "":
            continue  # InfluxDB drops empty tags; leaving them out keeps the series key stable
        parts.append(f",{key.translate(_KEY_ESCAPES)}={value.translate(_KEY_ESCAPES)}")
    fields = ",".join(f"{k.translate(_KEY_ESCAPES)}={_field(point.fields[k])}" for k in sorted(point.fields))
    return f"{''.join(parts)} {fields} {point.time_ms}"


def encode_batch(points: list[Point]) -> bytes:
    return "\n".join(encode_point(p) for p in points).encode()
