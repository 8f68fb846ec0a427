"""Report periods in plant time: a shift of the plant calendar (by date and name, or the last one finished) or any
interval. The calendar (ftel/plant/calendar.py) owns the site's zone and shifts; without a calendar file it is the
default one (three 8-hour shifts at Asia/Shanghai).

The report speaks plant time throughout, labelled: a period given in another zone is shown in plant time, and a
time given without an offset is read as plant time (and the report says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from dashboards.errors import PeriodError
from ftel.plant.calendar import Calendar, CalendarError, ShiftTime, default_calendar

_SHIFT_SPEC = re.compile(r"^(\d{4}-\d{2}-\d{2})/([a-z0-9][a-z0-9_-]*)$")


@dataclass(frozen=True, slots=True)
class Period:
    start_ms: int
    end_ms: int
    label: str
    # A time was given without an offset and read as plant time.
    zone_assumed: bool = False

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise PeriodError("the period ends before it starts")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _calendar(calendar: Calendar | None) -> Calendar:
    return calendar if calendar is not None else default_calendar()


def plant_time(ms: int, calendar: Calendar | None = None) -> datetime:
    return _calendar(calendar).local(ms)


def _read(text: str, calendar: Calendar) -> tuple[datetime, bool]:
    """The moment, and whether it came without an offset (then it is plant time)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"{text!r} is not an ISO date-time such as 2026-03-01T08:00 or 2026-03-01T00:00Z") from None
    return (moment, False) if moment.tzinfo else (moment.replace(tzinfo=calendar.zone), True)


def parse_moment(text: str, calendar: Calendar | None = None) -> datetime:
    """ISO 8601; without an offset it is plant time."""
    return _read(text, _calendar(calendar))[0]


def shift_period(shift: ShiftTime, calendar: Calendar) -> Period:
    start, end = calendar.local(shift.start_ms), calendar.local(shift.end_ms)
    return Period(
        shift.start_ms,
        shift.end_ms,
        f"{shift.name} shift {shift.day.isoformat()} {start:%H:%M}-{end:%H:%M} {calendar.time_label}",
    )


def shift(day: date, name: str, calendar: Calendar | None = None) -> Period:
    cal = _calendar(calendar)
    try:
        return shift_period(cal.shift(day, name), cal)
    except CalendarError as error:
        raise PeriodError(str(error)) from None


def last_shift(now: datetime, calendar: Calendar | None = None) -> Period:
    """The last shift that has ended by ``now``."""
    cal = _calendar(calendar)
    try:
        return shift_period(cal.last_shift(_ms(now)), cal)
    except CalendarError as error:
        raise PeriodError(str(error)) from None


def parse_shift(spec: str, now: datetime | None = None, calendar: Calendar | None = None) -> Period:
    """``last`` (the last finished shift) or ``YYYY-MM-DD/NAME`` with a shift name of the calendar."""
    cal = _calendar(calendar)
    if spec == "last":
        return last_shift(now or datetime.now(UTC), cal)
    match = _SHIFT_SPEC.match(spec)
    if not match:
        names = ", ".join(f"{s.name} from {s.start}" for s in cal.shifts)
        raise PeriodError(
            f"shift {spec!r}: use 'last' or DATE/SHIFT such as 2026-03-01/{cal.shifts[0].name} "
            f"(shifts: {names}, {cal.time_label})"
        )
    try:
        day = date.fromisoformat(match.group(1))
    except ValueError:
        raise PeriodError(f"shift {spec!r}: {match.group(1)} is not a date") from None
    return shift(day, match.group(2), cal)


def between(start: str, end: str, calendar: Calendar | None = None) -> Period:
    """From ``start`` to ``end`` (ISO 8601; without an offset, plant time), labelled in plant time."""
    cal = _calendar(calendar)
    (first, first_assumed), (last, last_assumed) = _read(start, cal), _read(end, cal)
    first_ms, last_ms = _ms(first), _ms(last)
    label = f"{cal.local(first_ms):%Y-%m-%d %H:%M} to {cal.local(last_ms):%Y-%m-%d %H:%M} {cal.time_label}"
    return Period(first_ms, last_ms, label, zone_assumed=first_assumed or last_assumed)
