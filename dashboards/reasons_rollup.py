"""Downtime per attributed reason for the boards: InfluxQL cannot join a stop with an operator's reason, so the
workshop downtime roll-ups are settled into ``rollup_classified_downtime``: per series (site, workshop, machine
type), reason and window, the DOWN time and stops begun with each classified ``unknown_fault`` stop moved to the
operator's reason, exactly as the report's Pareto (ftel/plant/reasons.py ``classified_downtime``): the stop's
milliseconds in each window, its count in the window it began in. What nobody explained stays under
``unknown_fault``: the Pareto's unexplained bar.

Idempotent: every window a classified stop touches is written with every reason an operator chose in the range
(the log keeps corrected ones too), zero where nothing is left, so a correction overwrites the old reason's point.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dashboards import queries as q
from dashboards.calendar_rollup import Series, series_of
from ftel.contract.states import UNKNOWN_FAULT, MachineState
from ftel.plant.reasons import Stop
from ftel.storage.lineproto import Point
from ftel.storage.points import classified_downtime_point
from ftel.storage.schema import Field, Tag

Key = tuple[Series, str, int]  # series, reason, window start


def _moved(stop: Stop, choices: Mapping[tuple[str, int], str]) -> str | None:
    """The operator's reason that takes the stop's downtime, or None when it keeps the controller's."""
    code = choices.get(stop.key)
    if code is None or stop.state is not MachineState.DOWN or stop.reason not in ("", UNKNOWN_FAULT):
        return None
    return code


def classified_points(
    rows: Iterable[dict[str, Any]],
    stops: Sequence[Stop],
    choices: Mapping[tuple[str, int], str],
    logged: Iterable[str],
    *,
    start_ms: int,
    end_ms: int,
) -> list[Point]:
    """From the 1m downtime roll-ups of [start_ms, end_ms) (``workshop_windows("downtime")`` rows), the stops
    around it and their standing reasons: the minute and hour points of every reason in every window with data."""
    window = q.WINDOW_MS
    minutes: dict[Key, list[int]] = {}
    for row in rows:
        key = (series_of(row), row[Tag.REASON], int(row["time"]))
        minutes[key] = [int(row[Field.DOWN_MS] or 0), int(row[Field.STOPS] or 0)]
    zero_filled = {*logged, UNKNOWN_FAULT}
    for stop in stops:
        code = _moved(stop, choices)
        if code is None:
            continue
        m = stop.machine
        series: Series = (m.site, m.workshop, m.machine_type.value)
        source = stop.reason or UNKNOWN_FAULT
        stop_end = stop.end_ms if stop.end_ms is not None else end_ms
        first, last = max(stop.start_ms, start_ms), min(stop_end, end_ms)
        at = first - first % window
        while at < last:
            ms = min(at + window, last) - max(at, first)
            for reason in zero_filled | {code}:
                minutes.setdefault((series, reason, at), [0, 0])
            minutes[(series, source, at)][0] -= ms
            minutes[(series, code, at)][0] += ms
            at += window
        if start_ms <= stop.start_ms < end_ms:
            began = stop.start_ms - stop.start_ms % window
            minutes.setdefault((series, source, began), [0, 0])[1] -= 1
            minutes.setdefault((series, code, began), [0, 0])[1] += 1
    hours: dict[Key, list[int]] = {}
    for (series, reason, at), (down_ms, count) in minutes.items():
        sums = hours.setdefault((series, reason, at - at % q.MS_PER_HOUR), [0, 0])
        sums[0] += down_ms
        sums[1] += count
    return [
        classified_downtime_point(series, reason, window_start=at, window_ms=window_ms, down_ms=ms, stops=count)
        for window_ms, sums in ((window, minutes), (q.MS_PER_HOUR, hours))
        for (series, reason, at), (ms, count) in sorted(sums.items())
    ]
