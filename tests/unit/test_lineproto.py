from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftel.storage.lineproto import LineProtocolError, Point, encode_point


def test_tags_and_fields_are_sorted_and_typed() -> None:
    point = Point(
        "state_time",
        {"workshop": "knit", "machine_id": "K-1"},
        {"units": 3, "speed": 0.5, "partial": False, "state": "DOWN"},
        1_000,
    )
    assert encode_point(point) == (
        'state_time,machine_id=K-1,workshop=knit partial=false,speed=0.5,state="DOWN",units=3i 1000'
    )


def test_hostile_text_is_escaped() -> None:
    point = Point("m x,y", {"tag key": 'a b,c=d"e'}, {"f=1": 'say "hi"\\ and\nbye'}, 5)
    assert encode_point(point) == 'm\\ x\\,y,tag\\ key=a\\ b\\,c\\=d"e f\\=1="say \\"hi\\"\\\\ and\nbye" 5'


@pytest.mark.parametrize("tag", ["two\nlines", "cr\r", "trailing\\"])
def test_tags_that_line_protocol_cannot_carry_are_refused(tag: str) -> None:
    with pytest.raises(LineProtocolError, match="line break or ends in a backslash"):
        encode_point(Point("m", {"t": tag}, {"x": 1}, 1))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(LineProtocolError, match="not finite"):
        encode_point(Point("m", {}, {"x": value}, 1))


def test_a_point_needs_a_field() -> None:
    with pytest.raises(LineProtocolError, match="no fields"):
        encode_point(Point("m", {"a": "b"}, {}, 1))


def unquote(quoted: str) -> str:
    """InfluxDB's reading of a quoted string field: only \\" and \\\\ are escapes."""
    out, i = [], 0
    while i < len(quoted):
        if quoted[i] == "\\" and i + 1 < len(quoted) and quoted[i + 1] in '"\\':
            i += 1
        elif quoted[i] == '"':
            raise AssertionError(f"unescaped quote at {i} in {quoted!r}")
        out.append(quoted[i])
        i += 1
    return "".join(out)


@given(st.text(min_size=1, max_size=40))
def test_a_string_field_reads_back_as_written_and_stays_inside_its_quotes(text: str) -> None:
    line = encode_point(Point("m", {"t": "v"}, {"s": text}, 1))
    assert line.startswith('m,t=v s="')
    assert line.endswith('" 1')
    assert unquote(line[len('m,t=v s="') : -len('" 1')]) == text
