"""The plant calendar: the site's time zone, its shifts (any list: 2×12 h, 3×8 h, …), breaks inside shifts,
weekly days off, holidays and one-off overrides for a date; and from it, exactly, the planned production time
inside any interval. Pure: no I/O beyond reading the file it is given (docs/calendar.md is the file's reference).

A shift belongs to the date it starts on (plant time): a night shift from 20:00 to 08:00 belongs to the day it
begins, so a Sunday off still ends Saturday's night shift on Sunday morning. Every boundary is wall-clock time
in the site's zone, in whole minutes: planned time starts and ends on a minute, so a gateway window of one minute
(or any window dividing a minute) is wholly inside or wholly outside it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from functools import cache
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationInfo, model_validator

from ftel.errors import ConfigError
from ftel.plant.yamlfile import Loc, describe, parse_yaml

# Qinghe's zone: the default calendar's, and so plant time when no calendar file is given.
DEFAULT_TIME_ZONE = "Asia/Shanghai"
MINUTES_PER_DAY = 24 * 60
# How far ahead (days) to look for the next shift: past a year of days off, the plant does not plan to work.
MAX_DAYS_AHEAD = 400
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Checks that need the whole calendar (overlaps) are left to the loader when it says so: it names the line.
CHECKED_BY_LOADER = "checked_by_loader"

_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class CalendarError(ConfigError):
    """A calendar question without an answer (no such shift that day); the text says what there is."""


def _weekday(value: object) -> object:
    if isinstance(value, str):
        text = value.strip().lower()
        for name in WEEKDAYS:
            if text in (name, name[:3]):
                return name
    return value


Weekday = Annotated[
    Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
    BeforeValidator(_weekday),
]
Clock = Annotated[str, Field(pattern=_CLOCK.pattern, description="HH:MM, 24-hour, plant time")]
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]


def minutes(clock: str) -> int:
    """Minutes after midnight of an ``HH:MM``."""
    match = _CLOCK.match(clock)
    if match is None:
        raise ValueError(f"{clock!r} is not a time of day HH:MM")
    return int(match.group(1)) * 60 + int(match.group(2))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Break(_Frozen):
    start: Clock
    end: Clock


class Shift(_Frozen):
    """A shift from ``start`` to ``end`` (an end at or before the start is the next day: at most 24 hours), with
    breaks inside it (unplanned time)."""

    name: Name
    start: Clock
    end: Clock
    breaks: tuple[Break, ...] = ()

    @property
    def start_minute(self) -> int:
        return minutes(self.start)

    @property
    def duration_minutes(self) -> int:
        length = (minutes(self.end) - self.start_minute) % MINUTES_PER_DAY
        return length or MINUTES_PER_DAY

    def break_offsets(self) -> list[tuple[int, int]]:
        """Each break as (minutes after the shift's start, minutes long)."""
        return [
            (
                (minutes(b.start) - self.start_minute) % MINUTES_PER_DAY,
                (minutes(b.end) - minutes(b.start)) % MINUTES_PER_DAY,
            )
            for b in self.breaks
        ]

    @model_validator(mode="after")
    def _breaks_inside(self) -> Shift:
        offsets = self.break_offsets()
        for (offset, length), b in zip(offsets, self.breaks, strict=True):
            if length == 0:
                raise ValueError(f"break {b.start}-{b.end} is empty")
            if offset + length > self.duration_minutes:
                raise ValueError(f"break {b.start}-{b.end} is not inside the shift {self.start}-{self.end}")
        ordered = sorted(offsets)
        for (first, length), (second, _) in itertools.pairwise(ordered):
            if first + length > second:
                raise ValueError(f"breaks of shift {self.name} overlap")
        return self


class Holidays(_Frozen):
    """Days without shifts, ``from`` to ``to`` inclusive."""

    first: date = Field(alias="from")
    last: date = Field(alias="to")
    name: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Holidays:
        if self.last < self.first:
            raise ValueError(f"holidays end ({self.last}) before they begin ({self.first})")
        return self


class Override(_Frozen):
    """One date run differently: these shifts instead of the usual ones (none: no work that day; on a day off or a
    holiday: work after all)."""

    date: date
    shifts: tuple[Shift, ...] = ()
    note: str = ""


@dataclass(frozen=True, slots=True)
class ShiftTime:
    """One shift on one date: [start_ms, end_ms) with its breaks; ``planned`` is the shift without its breaks."""

    name: str
    day: date
    start_ms: int
    end_ms: int
    breaks: tuple[tuple[int, int], ...]

    @property
    def planned(self) -> tuple[tuple[int, int], ...]:
        spans: list[tuple[int, int]] = []
        cursor = self.start_ms
        for start, end in self.breaks:
            if start > cursor:
                spans.append((cursor, start))
            cursor = max(cursor, end)
        if cursor < self.end_ms:
            spans.append((cursor, self.end_ms))
        return tuple(spans)

    @property
    def planned_ms(self) -> int:
        return sum(end - start for start, end in self.planned)

    @property
    def spec(self) -> str:
        """How ``ftel report --shift`` names it."""
        return f"{self.day.isoformat()}/{self.name}"


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Asia/Shanghai") from None


def _repeated_names(shifts: Sequence[Shift], loc: Loc) -> list[tuple[Loc, str]]:
    names = [s.name for s in shifts]
    return [
        ((*loc, index, "name"), f"shift name {name!r} is used twice")
        for index, name in enumerate(names)
        if name in names[:index]
    ]


def _pattern_problems(shifts: Sequence[Shift], loc: Loc) -> list[tuple[Loc, str]]:
    """Shifts of the usual day that overlap, counting the next day's repetition (the usual pattern repeats)."""
    problems = _repeated_names(shifts, loc)
    if sum(s.duration_minutes for s in shifts) > MINUTES_PER_DAY:
        problems.append((loc, "the shifts add up to more than 24 hours"))
    for i, a in enumerate(shifts):
        for j in range(i + 1, len(shifts)):
            b = shifts[j]
            if (b.start_minute - a.start_minute) % MINUTES_PER_DAY < a.duration_minutes or (
                a.start_minute - b.start_minute
            ) % MINUTES_PER_DAY < b.duration_minutes:
                problems.append(
                    ((*loc, j), f"shift {b.name} ({b.start}-{b.end}) overlaps shift {a.name} ({a.start}-{a.end})")
                )
    return problems


class Calendar(_Frozen):
    """A site's calendar (docs/calendar.md)."""

    site: str = ""
    time_zone: str = Field(description="IANA zone of the site, e.g. Asia/Shanghai: plant time everywhere")
    shifts: tuple[Shift, ...] = Field(min_length=1, description="the usual day's shifts")
    days_off: tuple[Weekday, ...] = ()
    holidays: tuple[date | Holidays, ...] = ()
    overrides: tuple[Override, ...] = ()
    _zone: tzinfo = PrivateAttr()
    _days: dict[date, tuple[ShiftTime, ...]] = PrivateAttr(default_factory=dict)
    _overrides: dict[date, Override] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Calendar:
        self._zone = _zone(self.time_zone)
        self._overrides = {o.date: o for o in self.overrides}
        if not (info.context or {}).get(CHECKED_BY_LOADER):
            problems = self.problems()
            if problems:
                raise ValueError("; ".join(f"{_where(loc)}: {msg}" for loc, msg in problems))
        return self

    def problems(self) -> list[tuple[Loc, str]]:
        """What the fields' own validation cannot see: overlapping shifts (in the usual pattern, and an override
        against the days around it), repeated override dates."""
        problems = _pattern_problems(self.shifts, ("shifts",))
        seen: set[date] = set()
        for index, override in enumerate(self.overrides):
            loc: Loc = ("overrides", index)
            if override.date in seen:
                problems.append(((*loc, "date"), f"{override.date} is overridden twice"))
            seen.add(override.date)
            # A one-off date does not repeat: its shifts are checked as they fall, against each other and the
            # shifts of the days around it.
            problems.extend(_repeated_names(override.shifts, (*loc, "shifts")))
            around = [t for d in (-1, 0, 1) for t in self.shifts_on(override.date + timedelta(days=d))]
            around.sort(key=lambda t: t.start_ms)
            for before, after in itertools.pairwise(around):
                if after.start_ms < before.end_ms and override.date in (before.day, after.day):
                    problems.append(
                        (
                            (*loc, "shifts"),
                            f"shift {after.spec} overlaps shift {before.spec} ({self.label_span(before)})",
                        )
                    )
        return problems

    # --- plant time -------------------------------------------------------------------------------------

    @property
    def zone(self) -> tzinfo:
        return self._zone

    @property
    def time_label(self) -> str:
        """How every page says which clock it speaks: ``plant time (Asia/Shanghai)``."""
        return f"plant time ({self.time_zone})"

    def local(self, ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, self._zone)

    def local_date(self, ms: int) -> date:
        return self.local(ms).date()

    def at(self, day: date, minute: int) -> int:
        """Epoch ms of wall-clock ``minute`` minutes after midnight of ``day`` (past 24 h: the following days)."""
        wall = datetime(day.year, day.month, day.day) + timedelta(minutes=minute)
        return int(wall.replace(tzinfo=self._zone).timestamp() * 1000)

    def label_span(self, shift: ShiftTime) -> str:
        return f"{self.local(shift.start_ms):%Y-%m-%d %H:%M}-{self.local(shift.end_ms):%H:%M}"

    # --- shifts -----------------------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        if WEEKDAYS[day.weekday()] in self.days_off:
            return False
        return not any(h == day if isinstance(h, date) else h.first <= day <= h.last for h in self.holidays)

    def shifts_of(self, day: date) -> tuple[Shift, ...]:
        """The shift definitions that start on ``day``: its override's, else the usual ones on a working day."""
        override = self._overrides.get(day)
        if override is not None:
            return override.shifts
        return self.shifts if self.is_working_day(day) else ()

    def shifts_on(self, day: date) -> tuple[ShiftTime, ...]:
        """The shifts that start on ``day`` (plant time), in order, with their times."""
        cached = self._days.get(day)
        if cached is None:
            times = []
            for s in self.shifts_of(day):
                start = s.start_minute
                breaks = tuple(
                    sorted(
                        (self.at(day, start + offset), self.at(day, start + offset + length))
                        for offset, length in s.break_offsets()
                    )
                )
                times.append(
                    ShiftTime(s.name, day, self.at(day, start), self.at(day, start + s.duration_minutes), breaks)
                )
            cached = tuple(sorted(times, key=lambda t: t.start_ms))
            if len(self._days) > 4096:
                self._days.clear()
            self._days[day] = cached
        return cached

    def shift(self, day: date, name: str) -> ShiftTime:
        """The shift ``name`` that starts on ``day``."""
        shifts = self.shifts_on(day)
        for s in shifts:
            if s.name == name:
                return s
        there = (
            ", ".join(f"{s.name} {self.label_span(s)}" for s in shifts) or "none (a day off, a holiday or overridden)"
        )
        raise CalendarError(f"no shift {name!r} starts on {day.isoformat()}; that day's shifts: {there}")

    def shifts_between(self, start_ms: int, end_ms: int) -> list[ShiftTime]:
        """Every shift overlapping [start_ms, end_ms), in order."""
        day = self.local_date(start_ms) - timedelta(days=1)
        last = self.local_date(end_ms)
        out: list[ShiftTime] = []
        while day <= last:
            out.extend(s for s in self.shifts_on(day) if s.start_ms < end_ms and s.end_ms > start_ms)
            day += timedelta(days=1)
        return out

    def next_shift_start(self, after_ms: int) -> int | None:
        """When the first shift starting after ``after_ms`` starts (None: none within MAX_DAYS_AHEAD days)."""
        day = self.local_date(after_ms) - timedelta(days=1)
        for _ in range(MAX_DAYS_AHEAD):
            starts = [s.start_ms for s in self.shifts_on(day) if s.start_ms > after_ms]
            if starts:
                return min(starts)
            day += timedelta(days=1)
        return None

    def last_shift(self, now_ms: int) -> ShiftTime:
        """The last shift that has ended by ``now_ms``."""
        day = self.local_date(now_ms)
        for _ in range(MAX_DAYS_AHEAD):
            ended = [s for s in self.shifts_on(day) if s.end_ms <= now_ms]
            if ended:
                return max(ended, key=lambda s: s.end_ms)
            day -= timedelta(days=1)
        raise CalendarError(f"no shift ended in the {MAX_DAYS_AHEAD} days before {self.local(now_ms):%Y-%m-%d %H:%M}")

    # --- planned production time ------------------------------------------------------------------------

    def spans_from(self, at_ms: int, until_ms: int | None = None) -> Iterator[tuple[int, int]]:
        """Planned time from ``at_ms`` on, as maximal [start, end) spans in order (the first may begin before
        ``at_ms``; adjoining shifts are one span), looking at most MAX_DAYS_AHEAD days ahead, and not past the day of
        ``until_ms`` when given (the last span may then go on beyond it)."""
        day = self.local_date(at_ms) - timedelta(days=1)
        last_day = self.local_date(until_ms) if until_ms is not None else day + timedelta(days=MAX_DAYS_AHEAD)
        pending: tuple[int, int] | None = None
        while day <= last_day:
            for start, end in (span for s in self.shifts_on(day) for span in s.planned if span[1] > at_ms):
                if pending is not None and start <= pending[1]:
                    pending = (pending[0], max(pending[1], end))
                    continue
                if pending is not None:
                    yield pending
                pending = (start, end)
            day += timedelta(days=1)
        if pending is not None:
            yield pending

    def planned_spans(self, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """Planned production time inside [start_ms, end_ms), as spans."""
        out: list[tuple[int, int]] = []
        for start, end in self.spans_from(start_ms, end_ms):
            if start >= end_ms:
                break
            out.append((max(start, start_ms), min(end, end_ms)))
        return out

    def planned_ms(self, start_ms: int, end_ms: int) -> int:
        """Milliseconds of planned production time inside [start_ms, end_ms), exactly."""
        return sum(end - start for start, end in self.planned_spans(start_ms, end_ms))

    def planned_at(self, at_ms: int) -> tuple[bool, int | None]:
        """Whether ``at_ms`` is planned time, and when that changes (None: not within MAX_DAYS_AHEAD days)."""
        for start, end in self.spans_from(at_ms):
            return (True, end) if start <= at_ms else (False, start)
        return False, None

    def after_planned(self, since_ms: int, duration_ms: int) -> int | None:
        """The moment ``duration_ms`` of planned time has passed since ``since_ms``: always inside planned time
        (a limit reached exactly at a span's end is reached at the next span's start). None: not within the
        calendar's horizon."""
        left = duration_ms
        for span_start, end in self.spans_from(since_ms):
            start = max(span_start, since_ms)
            if end - start > left:
                return start + left
            left -= end - start
        return None


def _where(loc: Loc) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def parse_calendar(text: str, *, source: str = "<calendar>") -> Calendar:
    """A calendar from YAML text; a ConfigError names the line and the field of every problem."""
    calendar, root = parse_yaml(text, Calendar, source=source, what="a calendar", context={CHECKED_BY_LOADER: True})
    problems = calendar.problems()
    if problems:
        raise ConfigError(describe(problems, root, source))
    return calendar


def load_calendar(path: Path) -> Calendar:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read the calendar {path}: {error.strerror}") from error
    return parse_calendar(text, source=str(path))


def site_calendar(path: Path | None) -> Calendar:
    """The site's calendar: the file the settings name (``calendar``), else the default one."""
    return load_calendar(path) if path is not None else default_calendar()


@cache
def default_calendar() -> Calendar:
    """Without a calendar file: three 8-hour shifts handing over at 00:00, 08:00 and 16:00 in Qinghe's zone, every
    day, no breaks: all time is planned (the figures of a plant that never stops)."""
    return Calendar(
        site="",
        time_zone=DEFAULT_TIME_ZONE,
        shifts=(
            Shift(name="night", start="00:00", end="08:00"),
            Shift(name="early", start="08:00", end="16:00"),
            Shift(name="late", start="16:00", end="00:00"),
        ),
    )
