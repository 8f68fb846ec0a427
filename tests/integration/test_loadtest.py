"""`ftel loadtest` end to end through the CLI: a small county plant with injected faults at a speed-up on a local
Mosquitto and InfluxDB the tool starts itself, judged against the ledger, with its summary and report."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.summary import COMPONENT_KEYS, COMPONENTS, SUMMARY_KEYS

pytestmark = pytest.mark.integration
MACHINES, PER_WORKSHOP = 200, 50
WORKSHOPS = MACHINES // PER_WORKSHOP
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.minutes
def test_a_small_county_passes_with_every_fault_alerted_and_a_full_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTEL_")}
    # 15 minutes of plant time (the default machine-down limits start at 12) in 90 s at 10x.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ftel.app",
            "loadtest",
            "--machines",
            str(MACHINES),
            "--per-workshop",
            str(PER_WORKSHOP),
            "--duration",
            "15m",
            "--speedup",
            "10",
            "--workers",
            "2",
            "--gateway-processes",
            "2",
            "--out",
            str(out),
        ],
        env=env | {"FTEL_STACK__DIR": str(tmp_path / "ftel")},
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "PASSED: lost 0, doubled 0, wrong 0" in result.stderr

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == set(SUMMARY_KEYS)
    assert (summary["lost"], summary["doubled"], summary["wrong"]) == (0, 0, 0)
    assert summary["passed"] is True
    assert summary["machines"] == summary["machines_exact"] == MACHINES
    assert summary["windows_expected"] == summary["windows_stored"] == MACHINES * 15
    assert summary["state_changes_expected"] == summary["state_changes_stored"] > 0
    assert summary["dead_letters"] == 0
    assert summary["gateway_processes"] == 2
    assert summary["messages"] > summary["windows_expected"]

    # Each workshop's long DOWN, burst of stops and overheating raised its alert, and nothing else did.
    assert summary["faults_injected"] == summary["faults_alerted"] == 3 * WORKSHOPS
    assert {f["kind"] for f in summary["faults"]} == {"long_down", "stop_burst", "overheat"}
    assert all(f["alerted"] and f["latency_ms"] is not None for f in summary["faults"])
    assert summary["faults_skipped"] == []
    assert summary["unexpected_alerts"] == 0
    assert summary["alert_latency_p99_ms"] is not None
    # At 10x a message's timestamp is plant time: no end-to-end latency is claimed.
    assert summary["latency_meaningful"] is False
    assert summary["latency_p99_ms"] is None

    for name in COMPONENTS:
        assert set(summary["components"][name]) == set(COMPONENT_KEYS)
        assert summary["components"][name]["peak_rss_mb"] > 0, name
    assert summary["components"]["gateways"]["processes"] == 2
    assert summary["components"]["ingest"]["processes"] == 2
    assert summary["timeline"]
    assert all(sample["late"] is None for sample in summary["timeline"])  # not counted faster than real time

    report = (out / "report.html").read_text()
    assert "PASSED" in report
    charts = dict(re.findall(r'data-chart="(\w+)" src="data:image/png;base64,([^"]+)"', report))
    assert {"throughput", "lag", "cpu", "memory", "alert_latency"} <= set(charts)
    assert all(base64.b64decode(png).startswith(PNG) for png in charts.values())
    assert all(f"<code>{key}</code>" in report for key in SUMMARY_KEYS)
    # A passing run keeps the plant, logs, summary and report, not the data.
    assert (out / "plant.yaml").exists()
    assert (out / "logs" / "gateways-1.log").exists()
    assert {"influxdb.out", "mosquitto.out", "mosquitto.log"} <= {p.name for p in (out / "logs").iterdir()}
    assert "ftel/" in (out / "logs" / "influxdb-files.txt").read_text()  # the database's files, kept after the stack
    assert not (out / "stack").exists()
