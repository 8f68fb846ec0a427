"""Shifts and report periods. Qinghe works three shifts, handing over at 08:00, 16:00 and 24:00 (UTC+8).

The report speaks plant time throughout, labelled: a period given in another zone is shown in plant time, and a
time given without an offset is read as plant time (and the report says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

PLANT_OFFSET_H = 8
PLANT_TIMEZONE = timezone(timedelta(hours=PLANT_OFFSET_H), "CST")
PLANT_TIME = f"plant time (UTC{PLANT_OFFSET_H:+d})"
SHIFT_HOURS = 8
# Shift name -> start hour, plant time.
SHIFTS = {"night": 0, "early": 8, "late": 16}
_SHIFT_SPEC = re.compile(r"^(\d{4}-\d{2}-\d{2})/(night|early|late)$")


class PeriodError(ValueError):
    """A period the user gave cannot be understood; the text says what is expected."""


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


def plant_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, PLANT_TIMEZONE)


def _read(text: str) -> tuple[datetime, bool]:
    """The moment, and whether it came without an offset (then it is plant time)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"{text!r} is not an ISO date-time such as 2026-03-01T08:00 or 2026-03-01T00:00Z") from None
    return (moment, False) if moment.tzinfo else (moment.replace(tzinfo=PLANT_TIMEZONE), True)


def parse_moment(text: str) -> datetime:
    """ISO 8601; without an offset it is plant time."""
    return _read(text)[0]


def shift(day: date, name: str) -> Period:
    start = datetime(day.year, day.month, day.day, SHIFTS[name], tzinfo=PLANT_TIMEZONE)
    end = start + timedelta(hours=SHIFT_HOURS)
    return Period(_ms(start), _ms(end), f"{name} shift {day.isoformat()} {start:%H:%M}-{end:%H:%M} {PLANT_TIME}")


def last_shift(now: datetime) -> Period:
    """The last shift that has ended by ``now``."""
    local = now.astimezone(PLANT_TIMEZONE)
    ended = local.replace(minute=0, second=0, microsecond=0, hour=local.hour - local.hour % SHIFT_HOURS)
    start = ended - timedelta(hours=SHIFT_HOURS)
    name = next(n for n, hour in SHIFTS.items() if hour == start.hour)
    return shift(start.date(), name)


def parse_shift(spec: str, now: datetime | None = None) -> Period:
    """``last`` (the last finished shift) or ``YYYY-MM-DD/night|early|late``."""
    if spec == "last":
        return last_shift(now or datetime.now(UTC))
    match = _SHIFT_SPEC.match(spec)
    if not match:
        raise PeriodError(
            f"shift {spec!r}: use 'last' or DATE/SHIFT such as 2026-03-01/early "
            f"(shifts: {', '.join(f'{n} from {h:02d}:00' for n, h in SHIFTS.items())}, {PLANT_TIME})"
        )
    return shift(date.fromisoformat(match.group(1)), match.group(2))


def between(start: str, end: str) -> Period:
    """From ``start`` to ``end`` (ISO 8601; without an offset, plant time), labelled in plant time."""
    (first, first_assumed), (last, last_assumed) = _read(start), _read(end)
    first_ms, last_ms = _ms(first), _ms(last)
    label = f"{plant_time(first_ms):%Y-%m-%d %H:%M} to {plant_time(last_ms):%Y-%m-%d %H:%M} {PLANT_TIME}"
    return Period(first_ms, last_ms, label, zone_assumed=first_assumed or last_assumed)
