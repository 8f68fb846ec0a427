"""The plant calendar (pure): shifts of a day, planned time inside any interval, and files refused by line."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftel.app.cli import main
from ftel.errors import ConfigError
from ftel.plant.calendar import CalendarError, default_calendar, parse_calendar
from tests.calendars import TWO_TWELVES

HOUR_MS = 3_600_000
CALENDAR = parse_calendar(TWO_TWELVES)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp() * 1000)


def test_two_twelve_hour_shifts_with_breaks_plan_23_hours_a_working_day() -> None:
    friday = CALENDAR.shifts_on(date(2026, 3, 6))
    assert [(s.name, s.start_ms, s.end_ms) for s in friday] == [
        ("day", _ms("2026-03-06T08:00"), _ms("2026-03-06T20:00")),
        ("night", _ms("2026-03-06T20:00"), _ms("2026-03-07T08:00")),
    ]
    assert [s.planned_ms for s in friday] == [11.5 * HOUR_MS, (11.5 - 1 / 3) * HOUR_MS]
    assert CALENDAR.planned_spans(_ms("2026-03-06T11:00"), _ms("2026-03-06T13:00")) == [
        (_ms("2026-03-06T11:00"), _ms("2026-03-06T12:00")),
        (_ms("2026-03-06T12:30"), _ms("2026-03-06T13:00")),
    ]


def test_a_day_off_still_ends_the_night_shift_that_began_the_day_before() -> None:
    sunday = date(2026, 3, 15)
    assert CALENDAR.shifts_on(sunday) == ()
    # Saturday's night shift runs to 08:00 on Sunday; then nothing until Monday 08:00.
    assert CALENDAR.planned_ms(_ms("2026-03-15T00:00"), _ms("2026-03-16T00:00")) == (7.5 - 1 / 3) * HOUR_MS
    assert CALENDAR.planned_at(_ms("2026-03-15T09:00")) == (False, _ms("2026-03-16T08:00"))
    week = CALENDAR.planned_ms(_ms("2026-03-09T08:00"), _ms("2026-03-16T08:00"))
    assert week == 6 * (23 - 1 / 3) * HOUR_MS


def test_holidays_and_overrides_replace_the_usual_shifts() -> None:
    assert CALENDAR.shifts_on(date(2026, 2, 17)) == ()
    assert CALENDAR.shifts_on(date(2026, 10, 1)) == ()
    assert [s.name for s in CALENDAR.shifts_on(date(2026, 2, 21))] == ["day", "night"]
    working_sunday = CALENDAR.shifts_on(date(2026, 3, 8))
    assert [(s.name, s.planned_ms) for s in working_sunday] == [("day", 8 * HOUR_MS)]


def test_a_shift_is_found_by_date_and_name_and_the_last_one_ended_by_now() -> None:
    night = CALENDAR.shift(date(2026, 3, 6), "night")
    assert night.spec == "2026-03-06/night"
    with pytest.raises(CalendarError, match="that day's shifts: day 2026-03-08 08:00-16:00"):
        CALENDAR.shift(date(2026, 3, 8), "night")
    assert CALENDAR.last_shift(_ms("2026-03-07T09:15")) == night
    # Monday morning: the last shift to end was Saturday's night.
    assert CALENDAR.last_shift(_ms("2026-03-16T07:00")).spec == "2026-03-14/night"


def test_planned_time_counted_from_a_moment_skips_breaks_and_days_off() -> None:
    assert CALENDAR.after_planned(_ms("2026-03-06T11:50"), 20 * 60_000) == _ms("2026-03-06T12:40")
    assert CALENDAR.after_planned(_ms("2026-03-15T07:50"), 20 * 60_000) == _ms("2026-03-16T08:10")


def test_the_default_calendar_plans_every_moment_in_three_eight_hour_shifts() -> None:
    calendar = default_calendar()
    start = _ms("2026-03-01T05:17")
    assert calendar.planned_ms(start, start + 50 * HOUR_MS) == 50 * HOUR_MS
    assert [s.name for s in calendar.shifts_on(date(2026, 3, 1))] == ["night", "early", "late"]
    assert calendar.shift(date(2026, 3, 1), "early").start_ms == _ms("2026-03-01T08:00")


def test_shifts_follow_the_wall_clock_across_a_daylight_saving_change() -> None:
    berlin = parse_calendar("time_zone: Europe/Berlin\nshifts: [{name: night, start: '22:00', end: '06:00'}]\n")
    # 2026-03-29 02:00 CET becomes 03:00 CEST: that night is an hour shorter.
    assert berlin.shifts_on(date(2026, 3, 28))[0].planned_ms == 7 * HOUR_MS
    assert berlin.shifts_on(date(2026, 3, 29))[0].planned_ms == 8 * HOUR_MS


def _minute_by_minute(text: str, start_ms: int, end_ms: int) -> int:
    """Planned time found the slow way: every minute's start checked against each shift and break."""
    calendar = parse_calendar(text)
    planned = 0
    for at in range(start_ms, end_ms, 60_000):
        for day_offset in (-1, 0):
            day = calendar.local_date(at) + timedelta(days=day_offset)
            for s in calendar.shifts_on(day):
                if s.start_ms <= at < s.end_ms and not any(a <= at < b for a, b in s.breaks):
                    planned += 60_000
    return planned


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 40 * 24 * 60), st.integers(1, 3 * 24 * 60))
def test_planned_time_of_any_interval_equals_a_minute_by_minute_count(start_min: int, length_min: int) -> None:
    start = _ms("2026-02-10T00:00") + start_min * 60_000
    end = start + length_min * 60_000
    assert CALENDAR.planned_ms(start, end) == _minute_by_minute(TWO_TWELVES, start, end)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "time_zone: Asia/Shanghai\nshifts:\n  - {name: day, start: 08:00, end: 20:00}\n"
            "  - {name: night, start: 19:00, end: 08:00}\n",
            "line 4, shifts[1]: shift night (19:00-08:00) overlaps shift day (08:00-20:00)",
        ),
        (
            "time_zone: Asia/Shanghai\nshifts:\n  - name: day\n    start: 08:00\n    end: 20:00\n"
            "    breaks: [{start: 21:00, end: 21:30}]\n",
            "line 3, shifts[0]: Value error, break 21:00-21:30 is not inside the shift 08:00-20:00",
        ),
        ("time_zone: Mars/Olympus\nshifts: [{name: day, start: 08:00, end: 20:00}]\n", "unknown time zone"),
        ("time_zone: UTC\nshifts: [{name: day, start: 8am, end: 20:00}]\n", "line 2, shifts[0].start"),
        (
            "time_zone: UTC\nshifts: [{name: day, start: 08:00, end: 20:00}, {name: night, start: 20:00, "
            "end: 08:00}]\noverrides:\n  - date: 2026-03-07\n    shifts: [{name: early, start: 06:00, end: 14:00}]\n",
            "line 5, overrides[0].shifts: shift 2026-03-07/early overlaps shift 2026-03-06/night",
        ),
        ("time_zone: UTC\nshifts: [{name: day, start: 08:00, end: 20:00}]\ndays_off: [sundy]\n", "line 3, days_off[0]"),
    ],
)
def test_a_bad_calendar_is_refused_naming_the_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_calendar(text, source="plant-calendar.yaml")
    assert expected in str(caught.value)


def test_calendar_show_prints_the_shifts_of_each_day_and_check_says_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text(TWO_TWELVES)
    assert main(["calendar", "show", "--file", str(path), "--date", "2026-03-07", "--days", "2"]) == 0
    shown = capsys.readouterr().out
    assert "plant time (Asia/Shanghai)" in shown
    assert "  night      20:00-08:00  planned 11 h 10 min  breaks 00:00-00:30, 05:00-05:20" in shown
    assert "2026-03-08 sun\n  day        08:00-16:00  planned 8 h" in shown
    assert "planned production time: 37 h 50 min of 48 h" in shown
    assert main(["calendar", "check", "--file", str(path)]) == 0
    assert "ok" in capsys.readouterr().out
    path.write_text(TWO_TWELVES.replace("start: 20:00", "start: 19:00"))
    assert main(["calendar", "check", "--file", str(path)]) == 2
    assert "overlaps" in capsys.readouterr().err


def test_the_next_shift_start_skips_days_off_and_is_strictly_after_the_moment() -> None:
    assert CALENDAR.next_shift_start(_ms("2026-03-14T20:00")) == _ms("2026-03-16T08:00")
    assert CALENDAR.next_shift_start(_ms("2026-03-14T19:59")) == _ms("2026-03-14T20:00")
    # The default calendar hands over at 00:00, 08:00 and 16:00 plant time: every 8 hours from midnight UTC.
    assert default_calendar().next_shift_start(1_794_787_200_000) == 1_794_787_200_000 + 8 * HOUR_MS


def test_an_override_is_checked_as_it_falls_not_as_a_repeating_pattern() -> None:
    # A long Saturday before a Sunday off: 08:00-20:00 and 22:00-10:00 would overlap if they repeated daily.
    text = TWO_TWELVES + "  - date: 2026-03-14\n    shifts:\n      - {name: day, start: 08:00, end: 20:00}\n"
    text += "      - {name: late, start: 22:00, end: 10:00}\n"
    calendar = parse_calendar(text)
    assert [s.name for s in calendar.shifts_on(date(2026, 3, 14))] == ["day", "late"]
    with pytest.raises(ConfigError, match="shift 2026-03-14/late overlaps shift 2026-03-13/night"):
        parse_calendar(text.replace("start: 22:00, end: 10:00", "start: 06:00, end: 07:00"))
