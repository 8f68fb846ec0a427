"""The shift report as one self-contained HTML page (charts embedded as PNG data URIs): opens from disk, and
survives being mailed."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape

from dashboards import charts
from dashboards.report_data import PlannedTime, ReportData
from ftel.contract.states import REASON_LABELS, STATE_COLOURS, STATE_ORDER
from ftel.plant.calendar import Calendar, default_calendar

STYLE = """
:root { --ink:#1f2933; --muted:#7b8794; --line:#e4e7eb; --bg:#f5f7fa; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font:15px/1.45 "DejaVu Sans", Helvetica, Arial, sans-serif; }
header { background:#16324f; color:white; padding:22px 32px; }
header h1 { margin:0; font-size:24px; } header p { margin:4px 0 0; color:#c8d6e5; }
main { max-width:1080px; margin:0 auto; padding:20px 24px 40px; }
section { background:white; border:1px solid var(--line); border-radius:10px; padding:18px 22px;
          margin:18px 0; }
section h2 { margin:0 0 12px; font-size:18px; }
.kpis { display:grid; grid-template-columns:repeat(4, 1fr); gap:14px; }
.kpi { background:white; border:1px solid var(--line); border-radius:10px; padding:14px 16px;
       border-top:5px solid var(--band); }
.kpi .value { font-size:28px; font-weight:bold; } .kpi .label { color:var(--muted); font-size:13px; }
table { border-collapse:collapse; width:100%; } th, td { padding:7px 10px; text-align:left; }
th { color:var(--muted); font-weight:normal; border-bottom:2px solid var(--line); }
td { border-bottom:1px solid var(--line); }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
img { max-width:100%; display:block; margin:6px 0; }
.chip { display:inline-block; min-width:2.2em; padding:2px 8px; border-radius:12px; color:white;
        text-align:center; font-weight:bold; }
.chip.zero { opacity:0.3; }
.empty { color:var(--muted); font-style:italic; }
footer { color:var(--muted); font-size:12px; text-align:center; }
"""

# Counts the charts that actually decoded, so a browser test (or a curious reader) can see they all loaded.
IMAGE_CHECK = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.dataset.imagesLoaded = loaded.length;
  document.body.dataset.images = images.length;
});
"""


def _when(ms: int, calendar: Calendar) -> str:
    """A moment in plant time, the report's one zone (labelled where it is shown)."""
    return calendar.local(ms).strftime("%Y-%m-%d %H:%M")


def _h(ms: int) -> str:
    return f"{ms / 3_600_000:,.1f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _band(value: float | None) -> str:
    return "#8e8e8e" if value is None else charts._band(value)


def _image(png: bytes, chart_id: str, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img id="{chart_id}" class="chart" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _table(table_id: str, headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int]) -> str:
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _section(section_id: str, title: str, content: str) -> str:
    return f'<section id="{section_id}"><h2>{escape(title)}</h2>{content}</section>'


def _kpis(data: ReportData) -> str:
    minutes = sum(d.minutes for d in data.downtime)
    stops = sum(d.stops for d in data.downtime)
    machines = sum(sum(c.values()) for c in data.machines_by_state.values())
    cards = [
        (_percent(data.utilisation), "Utilisation (calendar time)", _band(data.utilisation)),
        (f"{minutes:,.0f} min", "Downtime", "#d62f2f" if minutes else "#2e9e44"),
        (f"{stops}", "Stops", "#3b7dd8"),
        (f"{machines}", "Machines reporting", "#16324f"),
    ]
    return (
        '<div class="kpis" id="kpis">'
        + "".join(
            f'<div class="kpi" style="--band:{band}"><div class="value">{escape(value)}</div>'
            f'<div class="label">{escape(label)}</div></div>'
            for value, label, band in cards
        )
        + "</div>"
    )


def _states_now(data: ReportData) -> str:
    headers = ["Workshop", *(s.value.title() for s in STATE_ORDER)]
    rows = [
        [
            escape(w),
            *(
                f'<span class="chip{"" if counts[s] else " zero"}" style="background:{STATE_COLOURS[s]}">'
                f"{counts[s]}</span>"
                for s in STATE_ORDER
            ),
        ]
        for w, counts in data.machines_by_state.items()
    ]
    return _table("machines-by-state", headers, rows, set(range(1, len(headers))))


def _planned(planned: PlannedTime | None) -> str:
    """Machine hours per state inside the calendar's planned time and outside it (its own category)."""
    if planned is None:
        return '<p class="empty">No calendar.</p>'
    rows = [
        [escape(label), *(_h(part[s]) for s in STATE_ORDER), _h(sum(part.values()))]
        for label, part in (("Planned time", planned.inside), ("Outside shifts", planned.outside))
    ]
    note = (
        f"<p>Planned production time on the calendar: {_h(planned.calendar_ms)} h per machine. Availability is "
        "running time over planned time less offline, setup and maintenance; time outside shifts (breaks, nights "
        "and days without a shift) is counted apart and never as lost time.</p>"
    )
    headers = ["Machine hours", *(s.value.title() for s in STATE_ORDER), "Total"]
    return note + _table("planned-table", headers, rows, set(range(1, len(headers))))


def _micro_stops(data: ReportData) -> str:
    if not data.micro_stops:
        return '<p class="empty">No micro-stops in this period.</p>'
    rows = [
        [escape(m.workshop), escape(m.machine_type), f"{m.limit_s:g} s", str(m.stops), f"{m.ms / 60_000:.1f}"]
        for m in data.micro_stops
    ]
    return _table("micro-stops-table", ["Workshop", "Machine type", "Shorter than", "Stops", "Minutes"], rows, {3, 4})


def _unexplained(data: ReportData) -> str:
    """Stops the controller gave no reason for, per workshop: still unexplained, or classified by an operator."""
    if data.stops is None or not data.stops.by_workshop:
        return '<p class="empty">No stop without a machine reason ended in this period.</p>'
    rows = [
        [
            escape(workshop),
            str(f.unexplained.count),
            f"{f.unexplained.ms / 60_000:.1f}",
            str(f.classified.count),
            f"{f.classified.ms / 60_000:.1f}",
            _percent(f.unexplained_share),
        ]
        for workshop, f in data.stops.by_workshop.items()
    ]
    headers = ["Workshop", "Unexplained stops", "Minutes", "Classified stops", "Minutes", "Unexplained share"]
    reasons: dict[str, tuple[int, int]] = {}
    for f in data.stops.by_workshop.values():
        for code, tally in f.by_reason.items():
            count, ms = reasons.get(code, (0, 0))
            reasons[code] = (count + tally.count, ms + tally.ms)
    by_reason = [
        [escape(code), str(count), f"{ms / 60_000:.1f}"]
        for code, (count, ms) in sorted(reasons.items(), key=lambda item: -item[1][1])
    ]
    return _table("unexplained-table", headers, rows, {1, 2, 3, 4, 5}) + _table(
        "classified-table", ["Operators' reason", "Stops", "Minutes"], by_reason, {1, 2}
    )


def _orders(data: ReportData, cal: Calendar) -> str:
    """Per order: made in the period and to date against the target, the finish at the period's rate; per style:
    time per piece against the standard (docs/boards.md)."""
    if data.orders is None or not (data.orders.orders or data.orders.styles):
        return '<p class="empty">No machine reported a style or an order.</p>'
    orders = [
        [
            escape(o.order),
            escape(o.style),
            str(o.machines),
            str(o.period.units),
            str(o.period.defects),
            str(o.good_to_date),
            str(o.target) if o.target else "-",
            _percent(o.progress),
            f"{_when(f, cal)}" if (f := o.estimated_finish_ms) is not None else "-",
        ]
        for o in data.orders.orders
    ]
    styles = [
        [
            escape(s.style),
            str(s.counts.units),
            str(s.counts.defects),
            f"{s.counts.run_ms / 3_600_000:.1f}",
            f"{t:.0f}" if (t := s.seconds_per_piece) is not None else "-",
            f"{s.standard_s:g}" if s.standard_s else "-",
            _percent(s.performance),
        ]
        for s in data.orders.styles
    ]
    order_headers = ["Order", "Style", "Machines", "Pieces", "Defects", "Good to date", "Target", "Progress"]
    return _table("orders-table", [*order_headers, "Estimated finish"], orders, {2, 3, 4, 5, 6, 7}) + _table(
        "styles-table",
        ["Style", "Pieces", "Defects", "Running hours", "s per piece", "Standard s", "Performance"],
        styles,
        {1, 2, 3, 4, 5, 6},
    )


def render(data: ReportData, *, title: str, period: str, generated_ms: int, calendar: Calendar | None = None) -> str:
    """The whole page, in the calendar's plant time (default: the default calendar's)."""
    cal = calendar or default_calendar()
    sections = [
        _kpis(data),
        _section(
            "utilisation",
            "Utilisation",
            _image(
                charts.utilisation_chart(data.utilisation_by_workshop, data.utilisation_by_type),
                "chart-utilisation",
                "Utilisation per workshop and machine type",
            )
            + _table(
                "utilisation-table",
                ["Workshop", "Utilisation"],
                [[escape(w), _percent(u)] for w, u in data.utilisation_by_workshop.items()],
                {1},
            ),
        ),
        _section(
            "pareto",
            "Where the downtime went (the machine's reason, or the operator's where the machine gave none)",
            (
                _image(charts.pareto_chart(data.downtime), "chart-pareto", "Downtime by reason, Pareto")
                if data.downtime
                else '<p class="empty">No downtime in this period.</p>'
            )
            + _table(
                "downtime-table",
                ["Reason", "Minutes", "Stops"],
                [
                    [escape(REASON_LABELS.get(d.reason, d.reason)), f"{d.minutes:.1f}", str(d.stops)]
                    for d in data.downtime
                ],
                {1, 2},
            ),
        ),
        _section(
            "unexplained",
            "Stops without a machine reason (DOWN unknown_fault, long IDLE): unexplained and classified",
            _unexplained(data),
        ),
        _section("planned", "Planned time and time outside shifts", _planned(data.planned)),
        _section(
            "micro-stops",
            "Micro-stops (short stops, counted apart; also in the downtime above)",
            _micro_stops(data),
        ),
        _section(
            "oee",
            "OEE per machine type, over planned time",
            _table(
                "oee-table",
                ["Machine type", "Availability", "Performance", "Quality", "OEE"],
                [
                    [
                        escape(t.value),
                        _percent(o.availability),
                        _percent(o.performance),
                        _percent(o.quality),
                        f"<b>{_percent(o.oee)}</b>",
                    ]
                    for t, o in data.oee.items()
                ],
                {1, 2, 3, 4},
            ),
        ),
        _section("orders", "Orders and styles", _orders(data, cal)),
        _section(
            "worst",
            "Machines with most downtime",
            _table(
                "worst-table",
                ["Machine", "Workshop", "Minutes down"],
                [[escape(w.machine_id), escape(w.workshop), f"{w.down_ms / 60000:.1f}"] for w in data.worst],
                {2},
            ),
        ),
        _section("states-now", f"Machines by state at {_when(data.end_ms, cal)} {cal.time_label}", _states_now(data)),
        *(
            _section(
                f"timeline-{escape(w)}",
                f"State timeline, workshop {w}"
                + (f", the {len(m)} machines with most downtime" if data.timelines_worst_only else ""),
                _image(
                    charts.timeline_chart(m, data.start_ms, data.end_ms, cal),
                    f"chart-timeline-{escape(w)}",
                    f"State timeline of workshop {w}",
                ),
            )
            for w, m in data.timelines.items()
        ),
    ]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style>'
        f"<script>{IMAGE_CHECK}</script></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(period)}</p></header><main>"
        + "".join(sections)
        + f"<footer>Generated {_when(generated_ms, cal)} {escape(cal.time_label)} by ftel from InfluxDB, with the "
        "queries the Grafana boards use; all times are plant time. Utilisation = running / (observed - offline), "
        "over calendar time; availability over the calendar's planned time."
        "</footer></main></body></html>"
    )
