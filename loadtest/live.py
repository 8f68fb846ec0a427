"""The live progress of a load test: one table, redrawn each sample (rich)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.table import Table


def progress_table(sample: Mapping[str, Any], *, title: str, plant_end_ms: int, latency_p99_ms: int | None) -> Table:
    table = Table(title=title, title_justify="left", show_header=True, expand=False)
    table.add_column("run")
    table.add_column("", justify="right")
    table.add_column("component")
    table.add_column("CPU % of a core", justify="right")
    table.add_column("RSS MiB", justify="right")
    plant = time.strftime("%H:%M:%S", time.gmtime(sample["plant_ms"] / 1000))
    left_s = max(0, (plant_end_ms - sample["plant_ms"]) // 1000)
    run_rows = [
        ("wall s", f"{sample['t_s']:,.0f}"),
        ("plant time (UTC)", f"{plant} ({left_s:,} s left)"),
        ("messages/s", f"{sample['messages_per_s']:,.0f}"),
        ("points/s", f"{sample['points_per_s']:,.0f}"),
        ("messages in", f"{sample['messages']:,}"),
        ("unconfirmed", f"{sample['unconfirmed']:,}"),
        ("worker lag ms", f"{sample['worker_lag_ms']:,}"),
        ("latency p99 ms", "–" if latency_p99_ms is None else f"≤ {latency_p99_ms:,}"),
        ("late since last", "–" if sample["late"] is None else f"{sample['late']:,}"),
        ("alerts", f"{sample['alerts']:,}"),
    ]
    components = sorted(sample["cpu_percent"])
    for index in range(max(len(run_rows), len(components))):
        name, value = run_rows[index] if index < len(run_rows) else ("", "")
        component = components[index] if index < len(components) else ""
        cpu = f"{sample['cpu_percent'][component]:,.0f}" if component else ""
        rss = f"{sample['rss_mb'][component]:,.0f}" if component else ""
        table.add_row(name, value, component, cpu, rss)
    return table


def progress_line(sample: Mapping[str, Any], *, latency_p99_ms: int | None, late: int | None) -> str:
    """The same, as one line for a log; ``late``: the messages stored later than the aim since the last line."""
    cpu = " ".join(
        f"{name} {pct:.0f}%/{sample['rss_mb'][name]:.0f}MiB" for name, pct in sorted(sample["cpu_percent"].items())
    )
    p99 = "–" if latency_p99_ms is None else f"≤{latency_p99_ms:,}"
    return (
        f"t {sample['t_s']:,.0f}s  {sample['messages_per_s']:,.0f} msg/s  {sample['points_per_s']:,.0f} points/s  "
        f"unconfirmed {sample['unconfirmed']:,}  worker lag {sample['worker_lag_ms']:,} ms  latency p99 {p99} ms  "
        f"late {'–' if late is None else format(late, ',')}  alerts {sample['alerts']}  |  {cpu}"
    )
