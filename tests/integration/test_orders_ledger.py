"""Styles and orders against the ledger, through a real InfluxDB: the knitting workshop on two 12-hour shifts
with breaks, its machines changing style and order (some mid-window, orders spanning machines), backfilled through
the gateway core with the simulator's job points. Per style and per order, over several periods and to date, the
report's pieces, defects, running time, performance, progress, machines and estimated finish equal the ledger's;
each machine's job now is the simulator's last change; the report page shows the section."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dashboards import queries as q
from dashboards.orders_data import collect_orders, current_job, read_changes
from dashboards.orders_rollup import settle_orders
from dashboards.page import render
from dashboards.report_data import collect
from ftel.app.cli import main
from ftel.plant.calendar import Calendar
from ftel.plant.layout import Plant, default_plant
from ftel.plant.orders import Counts, Job, JobChange, order_figures, style_figures
from ftel.settings import Settings
from ftel.storage.query import InfluxQuery
from ftel.storage.writer import direct_write_policy, make_writer
from simulators.backfill import backfill
from simulators.jobs import DEFAULT_ORDERS, default_order_book, simulated_job_changes
from simulators.ledger import LedgerRow, plant_ledger
from simulators.machine import plant_models
from tests.calendars import two_twelves
from tests.support import Services, ftel_env, unique

pytestmark = pytest.mark.integration

WINDOW_MS = 60_000
HOUR_MS = 3_600_000
# Friday 07:30 plant time to Friday 21:30: the day shift with its meal break, the change to the night shift.
START = int(datetime(2026, 11, 13, 7, 30, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
END = START + 14 * HOUR_MS
BOOK = default_order_book()


@dataclass(frozen=True)
class Filled:
    settings: Settings
    client: InfluxQuery
    calendar: Calendar
    ledger: list[LedgerRow]
    changes: list[JobChange]


def _knitting(plant: Plant) -> Plant:
    return Plant(site=plant.site, seed=plant.seed, workshops=(plant.workshop("knit"),))


@pytest.fixture(scope="module")
def filled(services: Services) -> Filled:
    calendar = two_twelves()
    plant = _knitting(default_plant())
    settings = services.admin(unique("orders"))
    backfill(
        plant,
        settings.influx,
        start_ms=START,
        end_ms=END,
        window_ms=WINDOW_MS,
        telemetry_interval_ms=600_000,
        calendar=calendar,
        orders=BOOK,
    )
    ledger = list(plant_ledger(plant, start_ms=START, end_ms=END, window_ms=WINDOW_MS, calendar=calendar, orders=BOOK))
    changes = [
        c
        for _, model in plant_models(plant, start_ms=START, calendar=calendar)
        for c in simulated_job_changes(model, BOOK, end_ms=END, window_ms=WINDOW_MS)
    ]
    return Filled(settings, InfluxQuery(settings.influx), calendar, ledger, changes)


def _when_and_where(change: JobChange) -> tuple[int, str]:
    return change.at_ms, change.machine_id


def _job(key: str) -> Job:
    style, order = key.split("/")
    return Job(style, order)


def _ledger_jobs(rows: list[LedgerRow], start_ms: int, end_ms: int) -> dict[Job, Counts]:
    out: dict[Job, Counts] = {}
    for r in rows:
        if start_ms <= r.window_start < end_ms:
            for key, units in r.job_units.items():
                made = Counts(units, r.job_defects[key], r.job_run_ms[key])
                out[_job(key)] = out.get(_job(key), Counts()) + made
    return out


def _ledger_machines(rows: list[LedgerRow], start_ms: int, end_ms: int) -> dict[str, int]:
    machines: dict[str, set[str]] = {}
    for r in rows:
        if start_ms <= r.window_start < end_ms:
            for key, units in r.job_units.items():
                if units or r.job_run_ms[key]:
                    machines.setdefault(_job(key).order, set()).add(r.machine_id)
    return {order: len(found) for order, found in machines.items()}


@pytest.mark.parametrize(("start_min", "end_min"), [(0, 840), (17, 697), (150, 571)])
def test_figures_per_style_and_per_order_equal_the_ledger(filled: Filled, start_min: int, end_min: int) -> None:
    start, end = START + start_min * WINDOW_MS, START + end_min * WINDOW_MS
    got = collect_orders(filled.client, q.Binding(start, end), BOOK)
    period = _ledger_jobs(filled.ledger, start, end)
    to_date = _ledger_jobs(filled.ledger, START, end)
    assert got.styles == style_figures(BOOK, period)
    assert got.orders == order_figures(
        BOOK,
        period,
        to_date,
        _ledger_machines(filled.ledger, start, end),
        period_ms=end - start,
        as_of_ms=end,
    )
    # What the figures have to show: every style, orders on several machines, progress and a finish.
    assert {s.style for s in got.styles} == {s.id for s in BOOK.styles}
    assert all(s.performance is not None and 0.7 < s.performance < 1.1 for s in got.styles)
    assert sum(1 for o in got.orders if o.machines >= 2) >= 2
    # PO-2612's 150 pieces are done within the hours (the simulated knitters go on knitting it): it is finished
    # as of the period's end; the others finish later at the period's rate.
    done = {o.order for o in got.orders if o.remaining == 0}
    assert done == {"PO-2612"}
    assert all(o.estimated_finish_ms == end for o in got.orders if o.order in done)
    assert all((o.estimated_finish_ms or 0) > end for o in got.orders if o.order not in done)


def test_job_changes_inside_windows_are_read_back_with_what_the_window_had_made(filled: Filled) -> None:
    stored = sorted((f.change for f in read_changes(filled.client, q.Binding(START, END))), key=_when_and_where)
    assert stored == sorted(filled.changes, key=_when_and_where)
    inside = [c for c in stored if c.at_ms % WINDOW_MS and c.at_ms > START]
    assert any(c.before.units for c in inside)


def test_each_machines_job_now_is_its_last_change_and_the_report_shows_orders(filled: Filled) -> None:
    end = START + 600 * WINDOW_MS
    data = collect(filled.client, q.Binding(START, end), calendar=filled.calendar, orders=BOOK)
    assert data.orders is not None
    last: dict[str, JobChange] = {}
    for change in sorted(filled.changes, key=lambda c: c.at_ms):
        if change.at_ms <= end - 1:
            last[change.machine_id] = change
    assert {(j.machine_id, j.job, j.since_ms) for j in data.orders.jobs_now} == {
        (m, c.job, c.at_ms) for m, c in last.items()
    }
    # What the operator page reads before a change: the job at a moment.
    assert current_job(filled.client, "KNIT-003", end - 1) == last["KNIT-003"].job
    assert current_job(filled.client, "KNIT-003", START - 1) is None
    page = render(data, title="Shift report", period="test", generated_ms=end, calendar=filled.calendar)
    assert 'id="orders-table"' in page
    assert 'id="styles-table"' in page
    assert "PO-2613" in page


def test_the_orders_board_reads_the_settled_figures_equal_to_the_ledger(filled: Filled) -> None:
    """Settled over a period (as ``ftel orders settle`` does every few minutes), the board's per-style,
    per-order and progress tables equal the ledger's figures for any range inside it."""
    start, end = START + 17 * WINDOW_MS, END - 23 * WINDOW_MS
    writer = make_writer(filled.settings.influx)
    try:
        written = settle_orders(
            filled.client,
            writer,
            q.Binding(start, end),
            BOOK,
            site="qinghe",
            policy=direct_write_policy(filled.settings.influx),
        )
    finally:
        writer.close()
    assert written > 0
    inner = q.Binding(start + 61 * WINDOW_MS, end - 45 * WINDOW_MS)
    period = _ledger_jobs(filled.ledger, inner.start_ms, inner.end_ms)
    by_style = {s.style: s for s in style_figures(BOOK, period)}
    rows = filled.client.rows(q.bind(q.style_performance().influxql, inner))
    assert {r["style"]: (r["pieces"], r["defects"]) for r in rows} == {
        name: (f.counts.units, f.counts.defects) for name, f in by_style.items()
    }
    for r in rows:
        figures = by_style[r["style"]]
        assert r["running_hours"] == pytest.approx(figures.counts.run_ms / HOUR_MS, rel=1e-12)
        assert r["s_per_piece"] == pytest.approx(figures.seconds_per_piece, rel=1e-12)
        assert r["performance"] == pytest.approx(figures.performance, rel=1e-12)
    machines = _ledger_machines(filled.ledger, inner.start_ms, inner.end_ms)
    per_order: dict[str, Counts] = {}
    for job, counts in period.items():
        per_order[job.order] = per_order.get(job.order, Counts()) + counts
    rows = filled.client.rows(q.bind(q.order_pieces().influxql, inner))
    assert {r["order"]: (r["pieces"], r["defects"], r["good"], r["machines"]) for r in rows} == {
        order: (c.units, c.defects, c.units - c.defects, machines[order]) for order, c in per_order.items()
    }
    # Progress as of the settled period's end, at that period's rate.
    expected = order_figures(
        BOOK,
        _ledger_jobs(filled.ledger, start, end),
        _ledger_jobs(filled.ledger, START, end),
        _ledger_machines(filled.ledger, start, end),
        period_ms=end - start,
        as_of_ms=end,
    )
    rows = filled.client.rows(q.bind(q.order_progress().influxql, q.Binding(start, end + HOUR_MS)))
    assert {r["order"]: (r["style"], r["good_to_date"], r["target"], r["estimated_finish_ms"]) for r in rows} == {
        o.order: (o.style, o.good_to_date, o.target, o.estimated_finish_ms) for o in expected
    }
    assert {r["order"]: r["progress"] for r in rows} == pytest.approx({o.order: o.progress for o in expected})


def test_ftel_orders_checks_the_file_and_settles_the_board_from_the_command_line(
    services: Services,
    filled: Filled,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    orders_file = tmp_path / "orders.yaml"
    orders_file.write_text(DEFAULT_ORDERS)
    for name, value in ftel_env(services.settings(filled.settings.influx.database)).items():
        if name.startswith("FTEL_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("FTEL_ORDERS", str(orders_file))
    assert main(["orders", "check"]) == 0
    assert f"{orders_file}: ok; 3 styles, 4 orders" in capsys.readouterr().out
    end = START + 300 * WINDOW_MS
    assert main(["orders", "settle", "--hours", "2", "--end-ms", str(end)]) == 0
    assert "settled " in capsys.readouterr().out
    rows = filled.client.rows(q.bind(q.order_progress().influxql, q.Binding(end - 1, end + 1)))
    assert {r["order"] for r in rows} == {o.id for o in BOOK.orders}
    bad = tmp_path / "bad.yaml"
    bad.write_text("styles:\n  - id: S1\n    standard_s: 0\n")
    assert main(["orders", "check", "--file", str(bad)]) == 2
    assert "line 3, styles[0].standard_s" in capsys.readouterr().err
