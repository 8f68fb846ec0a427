"""Plant calendars the tests share: Qinghe's two 12-hour shifts with meal breaks and Sundays off."""

from __future__ import annotations

from ftel.plant.calendar import Calendar, parse_calendar

TWO_TWELVES = """\
site: qinghe
time_zone: Asia/Shanghai
shifts:
  - name: day
    start: 08:00
    end: 20:00
    breaks:
      - {start: 12:00, end: 12:30}
  - name: night
    start: 20:00
    end: 08:00
    breaks:
      - {start: 00:00, end: 00:30}
      - {start: 05:00, end: 05:20}
days_off: [sunday]
holidays:
  - 2026-10-01
  - {from: 2026-02-16, to: 2026-02-20, name: Spring Festival}
overrides:
  - date: 2026-03-08
    shifts:
      - {name: day, start: 08:00, end: 16:00}
"""


def two_twelves() -> Calendar:
    return parse_calendar(TWO_TWELVES, source="two-twelves.yaml")
