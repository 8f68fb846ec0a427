"""``ftel calendar show | check``: the shifts of a day or a week, and whether a calendar file is sound."""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from pathlib import Path

from ftel.errors import CliError
from ftel.plant.calendar import WEEKDAYS, Calendar, site_calendar
from ftel.settings import Settings


def _calendar(args: argparse.Namespace, settings: Settings) -> Calendar:
    return site_calendar(args.file or settings.calendar)


def _hours(ms: int) -> str:
    hours, minutes = divmod(ms // 60_000, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def describe_day(calendar: Calendar, day: date) -> list[str]:
    """A day as ``ftel calendar show`` prints it: its shifts with breaks and planned time, or why it has none."""
    head = f"{day.isoformat()} {WEEKDAYS[day.weekday()][:3]}"
    shifts = calendar.shifts_on(day)
    if not shifts:
        why = "no shifts (overridden)" if any(o.date == day for o in calendar.overrides) else "day off"
        if not calendar.is_working_day(day) and WEEKDAYS[day.weekday()] not in calendar.days_off:
            why = "holiday"
        return [f"{head}  {why}"]
    lines = [head]
    for s in shifts:
        breaks = ", ".join(f"{calendar.local(a):%H:%M}-{calendar.local(b):%H:%M}" for a, b in s.breaks)
        lines.append(
            f"  {s.name:<10} {calendar.label_span(s)[11:]}  planned {_hours(s.planned_ms)}"
            + (f"  breaks {breaks}" if breaks else "")
        )
    return lines


def _show(args: argparse.Namespace, settings: Settings) -> int:
    calendar = _calendar(args, settings)
    try:
        first = date.fromisoformat(args.date) if args.date else None
    except ValueError:
        raise CliError(f"--date {args.date!r}: use YYYY-MM-DD") from None
    if first is None:
        import time

        first = calendar.local_date(int(time.time() * 1000))
    days = 7 if args.week else args.days
    print(f"site {calendar.site or settings.site}, {calendar.time_label}")
    for offset in range(days):
        print("\n".join(describe_day(calendar, first + timedelta(days=offset))))
    start = calendar.at(first, 0)
    end = calendar.at(first + timedelta(days=days), 0)
    print(f"planned production time: {_hours(calendar.planned_ms(start, end))} of {_hours(end - start)}")
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    path: Path | None = args.file or settings.calendar
    calendar = site_calendar(path)
    names = ", ".join(f"{s.name} {s.start}-{s.end}" for s in calendar.shifts)
    print(
        f"{path or '(default calendar)'}: ok; {calendar.time_label}; shifts {names}; "
        f"days off: {', '.join(calendar.days_off) or 'none'}; {len(calendar.holidays)} holiday entries, "
        f"{len(calendar.overrides)} overrides"
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "calendar",
        help="the plant calendar: shifts of a day or week, or check a calendar file",
        description="The site's calendar (settings: calendar, FTEL_CALENDAR; docs/calendar.md): time zone, shifts, "
        "breaks, days off, holidays, overrides. Planned production time comes from it.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="the shifts, breaks and planned time of a day (or a week)")
    show.add_argument("--date", help="first day, YYYY-MM-DD in plant time (default: today)")
    show.add_argument("--days", type=int, default=1, help="how many days (default 1)")
    show.add_argument("--week", action="store_true", help="seven days")
    check = actions.add_parser("check", help="validate a calendar file (errors name the line)")
    for action in (show, check):
        action.add_argument("--file", type=Path, help="calendar YAML (default: the settings' calendar)")
    show.set_defaults(handler=_show)
    check.set_defaults(handler=_check)
