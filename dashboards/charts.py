"""The shift report's charts as PNG bytes (matplotlib, no display needed), in the boards' state colours."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from dashboards.report_data import Downtime, Segment
from ftel.contract.states import REASON_LABELS, STATE_COLOURS, STATE_ORDER
from ftel.plant.calendar import Calendar

INK = "#1f2933"
MUTED = "#7b8794"
GRID = "#e4e7eb"
ACCENT = "#3b7dd8"
PARETO_LINE = "#d62f2f"
DPI = 130
WIDTH_IN = 9.0
# Utilisation bands as on the boards: red below 60 %, amber below 85 %, green above.
BANDS = ((0.85, "#2e9e44"), (0.6, "#e0b400"), (0.0, "#d62f2f"))

plt.rcParams.update(
    {
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "axes.edgecolor": GRID,
        "axes.labelcolor": INK,
        "xtick.color": MUTED,
        "ytick.color": INK,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(figure)
    return buffer.getvalue()


def _band(value: float) -> str:
    return next(colour for floor, colour in BANDS if value >= floor)


def _bars(ax: Axes, values: Mapping[str, float], title: str) -> None:
    names = list(values)[::-1]
    numbers = [values[n] for n in names]
    bars = ax.barh(names, numbers, color=[_band(v) for v in numbers], height=0.6)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(axis="x", color=GRID)
    ax.set_axisbelow(True)
    ax.set_title(title, loc="left", color=INK, fontweight="bold")
    for bar, value in zip(bars, numbers, strict=True):
        ax.text(
            min(value, 1.0) - 0.01,
            bar.get_y() + bar.get_height() / 2,
            f"{value:.1%}",
            va="center",
            ha="right",
            color="white",
            fontweight="bold",
        )


def utilisation_chart(by_workshop: Mapping[str, float], by_type: Mapping[str, float]) -> bytes:
    rows = max(len(by_workshop), len(by_type), 1)
    figure, axes = plt.subplots(1, 2, figsize=(WIDTH_IN, 0.55 * rows + 1.0))
    _bars(axes[0], by_workshop, "Per workshop")
    _bars(axes[1], by_type, "Per machine type")
    return _png(figure)


def pareto_chart(downtime: Sequence[Downtime]) -> bytes:
    figure, ax = plt.subplots(figsize=(WIDTH_IN, 3.6))
    labels = [REASON_LABELS.get(d.reason, d.reason) for d in downtime]
    minutes = [d.minutes for d in downtime]
    ax.bar(labels, minutes, color=ACCENT, width=0.65)
    ax.set_ylabel("minutes down")
    ax.grid(axis="y", color=GRID)
    ax.set_axisbelow(True)
    ax.tick_params(axis="x", rotation=30)
    for tick in ax.get_xticklabels():
        tick.set_horizontalalignment("right")
    total = sum(minutes) or 1.0
    cumulative = [sum(minutes[: i + 1]) / total for i in range(len(minutes))]
    share = ax.twinx()
    share.plot(labels, cumulative, color=PARETO_LINE, marker="o", linewidth=2)
    share.set_ylim(0, 1.05)
    share.yaxis.set_major_formatter(PercentFormatter(1.0))
    share.spines["right"].set_visible(True)
    share.set_ylabel("cumulative share", color=PARETO_LINE)
    return _png(figure)


def timeline_chart(machines: Mapping[str, Sequence[Segment]], start_ms: int, end_ms: int, calendar: Calendar) -> bytes:
    zone = calendar.zone
    names = sorted(machines)
    figure, ax = plt.subplots(figsize=(WIDTH_IN, 0.28 * len(names) + 1.2))
    for row, name in enumerate(reversed(names)):
        segments = machines[name]
        ax.broken_barh(
            [(_day(s.start_ms, zone), _day(s.end_ms, zone) - _day(s.start_ms, zone)) for s in segments],
            (row - 0.4, 0.8),
            facecolors=[STATE_COLOURS[s.state] for s in segments],
            linewidth=0,
        )
    ax.set_yticks(range(len(names)), list(reversed(names)))
    ax.set_xlim(_day(start_ms, zone), _day(end_ms, zone))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(tz=zone, minticks=4, maxticks=12))  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=zone))  # type: ignore[no-untyped-call]
    ax.set_xlabel(calendar.time_label, color=MUTED)
    ax.grid(axis="x", color=GRID)
    ax.set_axisbelow(True)
    ax.legend(
        handles=[Patch(color=STATE_COLOURS[s], label=s.value) for s in STATE_ORDER],
        ncols=6,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12 - 0.4 / max(len(names), 1)),
        frameon=False,
    )
    return _png(figure)


def _day(ms: int, zone: tzinfo) -> float:
    """Matplotlib's date number (days) for an epoch millisecond."""
    return float(mdates.date2num(datetime.fromtimestamp(ms / 1000, zone)))  # type: ignore[no-untyped-call]
