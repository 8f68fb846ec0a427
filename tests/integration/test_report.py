"""The shift report from a real InfluxDB filled by a simulation, opened in headless Chromium (Debian's
package): every chart decodes, every table is there; the screenshot is kept in artifacts/."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from dashboards import queries as q
from dashboards.orders_rollup import write_points
from dashboards.report import write_report
from dashboards.report_data import TIMELINE_MACHINES, collect
from dashboards.shifts import Period
from dashboards.state_now import state_now_points
from ftel.app.cli import main
from ftel.plant.calendar import default_calendar
from ftel.plant.layout import default_plant
from ftel.storage.query import InfluxQuery
from ftel.storage.writer import RetryPolicy, make_writer
from simulators.backfill import backfill
from simulators.ledger import plant_ledger
from simulators.plant import generate_plant
from tests import sim_start
from tests.support import Services, ftel_env, unique

pytestmark = pytest.mark.integration
# Without a calendar file, plant time is the default calendar's zone.
PLANT_TIME = default_calendar().time_label

HOUR_MS = 3_600_000
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
# Generous: Chromium's first start on a cold machine is slow; the test never relies on it being fast.
CHROMIUM_TIMEOUT_S = 120
TABLES = ("utilisation-table", "downtime-table", "oee-table", "worst-table", "machines-by-state")
CHARTS = ("chart-utilisation", "chart-pareto", "chart-timeline-knit", "chart-timeline-yarn")


def _chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / unique('chromium')}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_S,
        check=True,
    )


def test_report_renders_from_real_data_and_opens_in_chromium(
    services: Services, database: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    now = int(time.time() * 1000)
    start = now - now % HOUR_MS - 4 * HOUR_MS
    settings = services.admin(database)
    backfill(
        default_plant(),
        settings.influx,
        start_ms=start,
        end_ms=start + 2 * HOUR_MS,
        window_ms=60_000,
        telemetry_interval_ms=30_000,
    )
    page = tmp_path / "report.html"
    data = write_report(settings, Period(start, start + 2 * HOUR_MS, "two simulated hours"), page)
    assert data.utilisation is not None
    assert data.downtime
    assert len(data.worst) == 10
    assert set(data.timelines) == {"knit", "yarn"}

    dom = _chromium(page, tmp_path, "--virtual-time-budget=5000", "--dump-dom").stdout
    images = re.search(r'data-images="(\d+)"', dom)
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    assert images, "the page's load script did not run"
    assert loaded, "the page's load script did not run"
    assert int(loaded.group(1)) == int(images.group(1)) == len(CHARTS)
    for element in (*TABLES, *CHARTS):
        assert f'id="{element}"' in dom, element
    assert dom.count("<tr>") > 30

    screenshot = artifacts_dir / "shift-report.png"
    screenshot.unlink(missing_ok=True)
    _chromium(page, tmp_path, "--window-size=1200,4200", f"--screenshot={screenshot}")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (artifacts_dir / "shift-report.html").write_text(page.read_text())


def test_report_command_writes_the_page_and_refuses_an_unclear_period(
    services: Services,
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = services.settings(database)  # no credentials: `ftel report` connects as the read-only supervisor
    for name, value in ftel_env(settings).items():
        if name.startswith("FTEL_"):
            monkeypatch.setenv(name, value)
    out = tmp_path / "empty.html"
    assert main(["report", "--from", "2026-03-01T08:00", "--to", "2026-03-01T16:00", "--out", str(out)]) == 0
    assert "Shift report" in out.read_text()
    said = capsys.readouterr().out
    assert f"2026-03-01 08:00 to 2026-03-01 16:00 {PLANT_TIME}" in said
    assert f"without an offset were read as {PLANT_TIME}" in said
    assert main(["report", "--from", "2026-03-01T00:00Z", "--to", "2026-03-01T08:00Z", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"2026-03-01 08:00 to 2026-03-01 16:00 {PLANT_TIME}" in said
    assert "without an offset" not in said
    assert main(["report", "--out", str(out)]) == 2
    assert main(["report", "--shift", "someday", "--out", str(out)]) == 2
    assert "DATE/SHIFT" in capsys.readouterr().err


def test_a_report_of_more_machines_than_a_timeline_can_show_draws_those_with_most_downtime(
    services: Services, database: str
) -> None:
    """A county's report stays one page: past TIMELINE_MACHINES, the timelines are the worst machines'."""
    plant = generate_plant(TIMELINE_MACHINES + 10, per_workshop=30)
    start = sim_start.start_ms(span_ms=HOUR_MS)
    settings = services.admin(database)
    backfill(
        plant, settings.influx, start_ms=start, end_ms=start + HOUR_MS, window_ms=60_000, telemetry_interval_ms=600_000
    )
    client = InfluxQuery(settings.influx)
    # How many machines there are comes from the state-now snapshot, settled each minute by `ftel settle`.
    write_points(make_writer(settings.influx), state_now_points(client, start + HOUR_MS), RetryPolicy())
    data = collect(client, q.Binding(start, start + HOUR_MS))
    assert data.timelines_worst_only
    drawn = {machine for machines in data.timelines.values() for machine in machines}
    assert drawn == {w.machine_id for w in data.worst}
    down: dict[str, int] = {}
    for row in plant_ledger(plant, start_ms=start, end_ms=start + HOUR_MS, window_ms=60_000):
        down[row.machine_id] = down.get(row.machine_id, 0) + row.state_ms["DOWN"]
    assert [w.down_ms for w in data.worst] == sorted(down.values(), reverse=True)[: q.WORST_MACHINES]
