"""The load test's HTML report: verdict, figures, plots (embedded PNG) and the meaning of every JSON key."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loadtest import charts
from loadtest.summary import COMPONENT_KEYS, COMPONENTS, SUMMARY_KEYS

STYLE = """
body { font-family: 'DejaVu Sans', sans-serif; color: #1f2933; max-width: 960px; margin: 2em auto; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
td, th { border-bottom: 1px solid #e4e7eb; padding: 3px 10px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.pass { background: #2e9e44; color: white; padding: 4px 12px; border-radius: 4px; }
.fail { background: #d62f2f; color: white; padding: 4px 12px; border-radius: 4px; }
img { max-width: 100%; } code { font-size: 0.9em; } .muted { color: #7b8794; }
"""


def _cell(value: Any) -> str:
    if value is None:
        return "<td class=n>–</td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, int | float):
        return f"<td class=n>{value:,}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def _rows(summary: Mapping[str, Any], keys: Sequence[str]) -> str:
    return "".join(
        f"<tr><th>{key}</th>{_cell(summary[key])}<td class=muted>{html.escape(SUMMARY_KEYS[key])}</td></tr>"
        for key in keys
    )


def _image(name: str, png: bytes) -> str:
    return f'<img alt="{name}" data-chart="{name}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def plots(
    summary: Mapping[str, Any], latency_counts: Sequence[int], alert_latencies: Sequence[int]
) -> dict[str, bytes]:
    """The report's plots by name (those with nothing to show are left out)."""
    timeline = summary["timeline"]
    out: dict[str, bytes] = {}
    if timeline:
        out["throughput"] = charts.throughput_chart(timeline)
        out["lag"] = charts.lag_chart(timeline)
        out["cpu"] = charts.cpu_chart(timeline)
        out["memory"] = charts.memory_chart(timeline)
    if summary["latency_meaningful"] and any(latency_counts):
        out["latency"] = charts.latency_chart(latency_counts)
    if alert_latencies:
        out["alert_latency"] = charts.alert_latency_chart(alert_latencies)
    return out


def render(summary: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    verdict = '<span class="pass">PASSED</span>' if summary["passed"] else '<span class="fail">FAILED</span>'
    components = "".join(
        f"<tr><th>{name}</th>{''.join(_cell(summary['components'][name][k]) for k in COMPONENT_KEYS)}</tr>"
        for name in COMPONENTS
    )
    faults = "".join(
        "<tr>"
        + "".join(_cell(f[k]) for k in ("kind", "rule", "workshop", "machine_id", "at_s", "alerted", "latency_ms"))
        + "</tr>"
        for f in summary["faults"]
    )
    skipped = "".join(f"<li>{html.escape(s)}</li>" for s in summary["faults_skipped"])
    differences = "".join(f"<li><code>{html.escape(d)}</code></li>" for d in summary["differences"])
    missed = "".join(f"<li><strong>aim missed</strong>: {html.escape(m)}</li>" for m in summary["aims_missed"])
    latency_note = (
        ""
        if summary["latency_meaningful"]
        else "<p class=muted>End-to-end latency is measured only at real time (--speedup 1): faster, a message's "
        "timestamp is plant time, not the wall time it was made.</p>"
    )
    figures = "".join(
        f"<h2>{name.replace('_', ' ').capitalize()}</h2>{_image(name, png)}" for name, png in images.items()
    )
    keys = "".join(f"<tr><th><code>{k}</code></th><td>{html.escape(v)}</td></tr>" for k, v in SUMMARY_KEYS.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ftel load test: {summary["machines"]:,} machines</title>
<style>{STYLE}</style></head><body>
<h1>ftel load test — {summary["machines"]:,} machines, {summary["duration_s"]:,} s at {summary["speedup"]:g}× {
        verdict
    }</h1>
<h2>Run</h2><table>{
        _rows(
            summary,
            [
                "target",
                "machines",
                "workshops",
                "gateway_processes",
                "ingest_workers",
                "speedup",
                "duration_s",
                "wall_s",
            ],
        )
    }</table>
<h2>Verdict against the ledger</h2><table>{
        _rows(
            summary,
            [
                "lost",
                "doubled",
                "wrong",
                "machines_exact",
                "windows_expected",
                "windows_stored",
                "state_changes_expected",
                "state_changes_stored",
                "dead_letters",
                "gateway_processes_failed",
            ],
        )
    }</table>
{f"<ul>{differences}</ul>" if differences else ""}
<h2>Throughput and latency</h2><table>{
        _rows(
            summary,
            [
                "messages",
                "points",
                "messages_per_s",
                "points_per_s",
                "latency_samples",
                "latency_p50_ms",
                "latency_p95_ms",
                "latency_p99_ms",
                "latency_steady_samples",
                "latency_steady_p50_ms",
                "latency_steady_p95_ms",
                "latency_steady_p99_ms",
                "latency_stop_samples",
                "latency_stop_p99_ms",
                "unconfirmed_peak",
                "worker_lag_peak_ms",
            ],
        )
    }</table>{latency_note}
<h2>Latency aims</h2><table>{
        _rows(
            summary,
            ["aims_judged", "latency_aim_ms", "latency_steady_p99_ms", "alert_latency_aim_ms", "alert_latency_p99_ms"],
        )
    }</table>{f"<ul>{missed}</ul>" if missed else ""}
<h2>Alerts</h2><table>{
        _rows(
            summary,
            [
                "alerts",
                "alert_latency_p50_ms",
                "alert_latency_p95_ms",
                "alert_latency_p99_ms",
                "alert_latency_max_ms",
                "faults_injected",
                "faults_alerted",
                "unexpected_alerts",
            ],
        )
    }</table>
<table><tr><th>kind</th><th>rule</th><th>workshop</th><th>machine</th><th>at s</th><th>alerted</th>
<th>latency ms</th></tr>{faults}</table>{f"<p>Left out:</p><ul>{skipped}</ul>" if skipped else ""}
<h2>CPU and memory per component</h2>
<table><tr><th></th>{"".join(f"<th>{k}</th>" for k in COMPONENT_KEYS)}</tr>{components}</table>
{figures}
<h2>The JSON summary's keys</h2><table>{keys}</table>
</body></html>
"""


def write_outputs(
    directory: Path, summary: Mapping[str, Any], latency_counts: Sequence[int], alert_latencies: Sequence[int]
) -> tuple[Path, Path]:
    """``summary.json`` (sorted keys) and ``report.html`` in ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "summary.json"
    json_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    html_path = directory / "report.html"
    html_path.write_text(render(summary, plots(summary, latency_counts, alert_latencies)))
    return json_path, html_path
