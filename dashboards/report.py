"""``ftel report``: the shift report from InfluxDB to one HTML file."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from dashboards.page import render
from dashboards.queries import Binding
from dashboards.report_data import ReportData, collect
from dashboards.shifts import Period
from ftel.plant.calendar import Calendar, site_calendar
from ftel.plant.orders import load_order_book
from ftel.settings import Settings
from ftel.storage.query import InfluxQuery


def report_data(
    settings: Settings,
    period: Period,
    variables: Mapping[str, Sequence[str]] | None = None,
    calendar: Calendar | None = None,
) -> ReportData:
    """The report's figures; planned time from ``calendar`` (default: the settings' calendar)."""
    return collect(
        InfluxQuery(settings.influx),
        Binding(period.start_ms, period.end_ms, variables=variables),
        calendar=calendar or site_calendar(settings.calendar),
        micro_stop_s=settings.micro_stop_s,
        orders=load_order_book(settings.orders) if settings.orders else None,
        idle_unexplained_s=settings.operators.idle_unexplained_s,
    )


def write_report(
    settings: Settings,
    period: Period,
    out: Path,
    *,
    variables: Mapping[str, Sequence[str]] | None = None,
    calendar: Calendar | None = None,
) -> ReportData:
    """Render the report for ``period`` to ``out``; return what it shows."""
    calendar = calendar or site_calendar(settings.calendar)
    data = report_data(settings, period, variables, calendar)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        render(
            data,
            title=f"Shift report, {settings.site}",
            period=period.label,
            generated_ms=int(time.time() * 1000),
            calendar=calendar,
        )
    )
    return data
