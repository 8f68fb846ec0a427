"""Planned time for the boards: InfluxQL cannot join state times with the plant calendar, so the workshop roll-ups
are settled into ``rollup_planned_time``: per series (site, workshop, machine type) and window, the machine time
in each state inside the calendar's planned time and outside it (docs/calendar.md, "Settled for the boards").

Exact for the same reason the report is: calendar boundaries fall on whole minutes, so each one-minute roll-up is
wholly inside or wholly outside planned time. Every minute and hour is written twice, inside and outside (one of
them zero for a minute), so settling again after a calendar change overwrites both sides: idempotent, nothing to
delete.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from dashboards import queries as q
from ftel.storage.lineproto import Point
from ftel.storage.points import planned_time_point
from ftel.storage.schema import Tag

Series = tuple[str, str, str]
FIELDS = q.KIND_FIELDS["planned"]


def series_of(row: dict[str, Any]) -> Series:
    return row[Tag.SITE], row[Tag.WORKSHOP], row[Tag.MACHINE_TYPE]


def is_planned(at_ms: int, spans: Sequence[tuple[int, int]], starts: Sequence[int]) -> bool:
    """Whether the window starting at ``at_ms`` is planned (``spans`` sorted, ``starts`` their starts)."""
    index = bisect_right(starts, at_ms) - 1
    return index >= 0 and at_ms < spans[index][1]


def planned_points(rows: Iterable[dict[str, Any]], spans: Sequence[tuple[int, int]]) -> list[Point]:
    """From the 1m workshop roll-ups (``workshop_windows("state")`` rows) and the calendar's planned spans over
    their range: the minute and hour points, inside and outside, of every series and window that has data."""
    starts = [start for start, _ in spans]
    minutes: dict[tuple[Series, int, bool], Counter[str]] = {}
    hours: dict[tuple[Series, int, bool], Counter[str]] = {}
    for row in rows:
        series, at = series_of(row), int(row["time"])
        inside = is_planned(at, spans, starts)
        values = Counter({f: int(row[f] or 0) for f in FIELDS})
        hour = at - at % q.MS_PER_HOUR
        for side in (True, False):
            minutes.setdefault((series, at, side), Counter())
            hours.setdefault((series, hour, side), Counter())
        minutes[(series, at, inside)].update(values)
        hours[(series, hour, inside)].update(values)
    points: list[Point] = []
    for window_ms, sums in ((q.WINDOW_MS, minutes), (q.MS_PER_HOUR, hours)):
        for (series, at, inside), values in sorted(sums.items()):
            fields = {f: values[f] for f in FIELDS}
            points.append(
                planned_time_point(series, window_start=at, window_ms=window_ms, inside=inside, fields=fields)
            )
    return points
