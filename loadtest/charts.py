"""The load-test report's plots as PNG bytes (matplotlib without a display), from the summary's timeline."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ftel.histogram import BOUNDS_MS

INK = "#1f2933"
MUTED = "#7b8794"
GRID = "#e4e7eb"
COLOURS = ("#3b7dd8", "#2e9e44", "#d62f2f", "#e0b400", "#8e44ad", "#7b8794")
DPI = 110
SIZE = (9.0, 3.2)

Timeline = Sequence[Mapping[str, Any]]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(figure)
    return buffer.getvalue()


def _axes(title: str, ylabel: str, xlabel: str = "wall seconds since the plant started") -> tuple[Figure, Axes]:
    figure, ax = plt.subplots(figsize=SIZE)
    ax.set_title(title, loc="left", color=INK, fontweight="bold")
    ax.set_ylabel(ylabel, color=INK)
    ax.set_xlabel(xlabel, color=MUTED)
    ax.grid(color=GRID)
    ax.set_axisbelow(True)
    return figure, ax


def _t(timeline: Timeline) -> list[float]:
    return [float(s["t_s"]) for s in timeline]


def throughput_chart(timeline: Timeline) -> bytes:
    figure, ax = _axes("Throughput", "per second")
    ax.plot(_t(timeline), [s["messages_per_s"] for s in timeline], color=COLOURS[0], label="messages in")
    ax.plot(_t(timeline), [s["points_per_s"] for s in timeline], color=COLOURS[1], label="points written")
    ax.legend(frameon=False)
    return _png(figure)


def lag_chart(timeline: Timeline) -> bytes:
    figure, ax = _axes("Lag", "unconfirmed messages")
    ax.plot(_t(timeline), [s["unconfirmed"] for s in timeline], color=COLOURS[0], label="gateways' unconfirmed")
    twin = ax.twinx()
    twin.plot(_t(timeline), [s["worker_lag_ms"] for s in timeline], color=COLOURS[2], label="worker write lag")
    twin.set_ylabel("worker write lag, ms", color=COLOURS[2])
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [str(line.get_label()) for line in lines], frameon=False, loc="upper left")
    return _png(figure)


def _per_component(timeline: Timeline, key: str, title: str, ylabel: str) -> bytes:
    figure, ax = _axes(title, ylabel)
    names = sorted({name for s in timeline for name in s[key]})
    for colour, name in zip(COLOURS * 2, names, strict=False):
        ax.plot(_t(timeline), [s[key].get(name, 0.0) for s in timeline], color=colour, label=name)
    ax.legend(frameon=False, ncols=3)
    return _png(figure)


def cpu_chart(timeline: Timeline) -> bytes:
    return _per_component(timeline, "cpu_percent", "CPU per component", "% of one core")


def memory_chart(timeline: Timeline) -> bytes:
    return _per_component(timeline, "rss_mb", "Memory per component", "resident MiB")


def latency_chart(counts: Sequence[int]) -> bytes:
    """The merged end-to-end latency histogram, one bar per bucket that holds anything."""
    figure, ax = _axes("End-to-end latency: machine timestamp → stored", "messages", "ms (histogram bucket)")
    labels = [f"≤{b:,}" for b in BOUNDS_MS] + [f">{BOUNDS_MS[-1]:,}"]
    shown = [(label, count) for label, count in zip(labels, counts, strict=False) if count]
    ax.bar([label for label, _ in shown], [count for _, count in shown], color=COLOURS[0])
    return _png(figure)


def alert_latency_chart(latencies_ms: Sequence[int]) -> bytes:
    figure, ax = _axes("Alert latency: condition true → alert received", "alerts", "seconds")
    ax.hist([ms / 1000 for ms in latencies_ms], bins=30, color=COLOURS[2])
    return _png(figure)
