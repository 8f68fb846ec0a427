from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.lineproto import LineProtocolError, Point, encode_point


def test_tags_and_fields_are_sorted_and_typed() -> None:
    point = Point("state_time", {"workshop": "knit", "machine_id": "K-1"},
                  {"units": 3, "speed": 0.5, "partial": False, "state": "DOWN"}, 1_000)
    assert encode_point(point) == (
        'state_time,machine_id=K-1,workshop=knit partial=false,speed=0.5,state="DOWN",units=3i 1000'
    )


def test_hostile_text_is_escaped() -> None:
    point = Point("m x,y", {"tag key": 'a b,c=d"e'}, {"f=1": 'say "hi"\\ and\nbye'}, 5)
    assert encode_point(point) == r'm\ x\,y,tag\ key=a\ b\,c\=d"e f\=1="say \"hi\"\\ and\nbye" 5'


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(LineProtocolError, match="not finite"):
        encode_point(Point("m", {}, {"x": value}, 1))


def test_a_point_needs_a_field() -> None:
    with pytest.raises(LineProtocolError, match="no fields"):
        encode_point(Point("m", {"a": "b"}, {}, 1))


@given(st.text(min_size=1, max_size=40))
def test_no_string_field_can_break_out_of_its_line(text: str) -> None:
    line = encode_point(Point("m", {"t": "v"}, {"s": text}, 1))
    assert "\n" not in line
    assert line.endswith(" 1")
