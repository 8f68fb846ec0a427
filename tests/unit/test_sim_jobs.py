"""Ground truth for styles and orders (pure): knitting machines change jobs (seeded), and the gateway core's own
windows, split at the changes by what each says its window had made before it, give each job exactly the
pieces, defects and running time the ledger attributes to it from the segments."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

from ftel.contract.models import ProgramChange, StateWindow
from ftel.contract.states import MachineState
from ftel.plant.layout import default_plant
from ftel.plant.orders import Counts, Job, JobChange, WindowCounts, resolve_programs, split, totals
from gateway.core import GatewayCore, GatewayTiming
from gateway.tracker import Origin
from simulators.driver import SimulatedDriver
from simulators.jobs import default_order_book, simulated_job_changes, simulated_programs
from simulators.ledger import job_key, plant_ledger
from simulators.machine import plant_models
from tests.calendars import two_twelves

WINDOW = 60_000
START = int(datetime(2026, 11, 13, 6, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
END = START + 14 * 3_600_000
BOOK = default_order_book()
CALENDAR = two_twelves()


def test_the_gateways_windows_split_at_the_simulated_changes_equal_the_ledgers_jobs() -> None:
    plant = default_plant()
    ledger: dict[str, Counts] = {}
    for r in plant_ledger(plant, start_ms=START, end_ms=END, window_ms=WINDOW, calendar=CALENDAR, orders=BOOK):
        for key, units in r.job_units.items():
            ledger[key] = ledger.get(key, Counts()) + Counts(units, r.job_defects[key], r.job_run_ms[key])
    models = plant_models(plant, start_ms=START, workshop="knit", calendar=CALENDAR)
    changes = [c for _, m in models for c in simulated_job_changes(m, BOOK, end_ms=END, window_ms=WINDOW)]
    drivers = {m.spec.id: SimulatedDriver(m) for _, m in models}
    core = GatewayCore(
        Origin(plant.site, "knit", "gw-knit"),
        [d.info for d in drivers.values()],
        GatewayTiming(WINDOW, 600_000, 60_000, 0.0, telemetry_spread=False),
        boot_id=START,
    )
    windows: list[WindowCounts] = []
    for at in [START, *core.read_times(START, END)]:
        for m in core.observe(at, {mid: d.read(at) for mid, d in drivers.items()}):
            if isinstance(m, StateWindow):
                counts = Counts(m.units, m.defects, m.state_ms[MachineState.RUNNING])
                windows.append(WindowCounts(m.machine_id, m.window_start, m.window_ms, counts))
    measured = {job_key(job): counts for job, counts in totals(split(windows, changes)).items()}
    assert measured == ledger
    # The story the test needs: orders spanning machines, style changes, and changes inside a window while the
    # machine had made something in it.
    machines_per_order = Counter(c.job.order for c in changes)
    assert sum(1 for n in machines_per_order.values() if n >= 2) >= 3
    assert len({c.job.style for c in changes}) == 3
    inside = [c for c in changes if c.at_ms % WINDOW and c.at_ms > START]
    assert any(c.before.run_ms for c in inside)
    assert any(c.before.units for c in inside)


def test_the_same_seed_gives_the_same_changes_whatever_the_end() -> None:
    [(_, model)] = [(w, m) for w, m in plant_models(default_plant(), start_ms=START) if m.spec.id == "KNIT-004"]
    short = list(simulated_job_changes(model, BOOK, end_ms=START + 6 * 3_600_000, window_ms=WINDOW))
    long = list(simulated_job_changes(model, BOOK, end_ms=END, window_ms=WINDOW))
    assert long[: len(short)] == short
    assert len(long) > len(short)
    assert list(simulated_job_changes(model, BOOK, end_ms=END, window_ms=WINDOW)) == long


def test_a_gateway_reading_the_controllers_program_splits_its_windows_per_style_as_the_ledger() -> None:
    """The controller path: each simulated controller shows its style's program; the gateway core sends a
    program change with what its window had made before it; resolved by the orders file and split, the pieces,
    defects and running time per style equal the ledger's (a controller knows no order: per style only)."""
    plant = default_plant()
    ledger: dict[str, Counts] = {}
    for r in plant_ledger(plant, start_ms=START, end_ms=END, window_ms=WINDOW, calendar=CALENDAR, orders=BOOK):
        for key, units in r.job_units.items():
            style = key.split("/")[0]
            ledger[style] = ledger.get(style, Counts()) + Counts(units, r.job_defects[key], r.job_run_ms[key])
    models = plant_models(plant, start_ms=START, workshop="knit", calendar=CALENDAR)
    drivers = {m.spec.id: SimulatedDriver(m, programs=simulated_programs(m, BOOK, end_ms=END)) for _, m in models}
    core = GatewayCore(
        Origin(plant.site, "knit", "gw-knit"),
        [d.info for d in drivers.values()],
        GatewayTiming(WINDOW, 600_000, 60_000, 0.0, telemetry_spread=False),
        boot_id=START,
    )
    windows: list[WindowCounts] = []
    read: list[JobChange] = []
    for at in [START, *core.read_times(START, END)]:
        for m in core.observe(at, {mid: d.read(at) for mid, d in drivers.items()}):
            if isinstance(m, StateWindow):
                counts = Counts(m.units, m.defects, m.state_ms[MachineState.RUNNING])
                windows.append(WindowCounts(m.machine_id, m.window_start, m.window_ms, counts))
            elif isinstance(m, ProgramChange):
                before = Counts(m.units_before, m.defects_before, m.run_ms_before)
                read.append(JobChange(m.machine_id, m.ts, Job(""), before, "controller", m.gateway_id, m.program))
    resolved = resolve_programs(read, BOOK)
    measured = {job.style: counts for job, counts in totals(split(windows, resolved)).items()}
    assert measured == ledger
    assert {c.program for c in read} == {"17", "18", "23"}
    assert all(c.job.order == "" for c in resolved)
    assert any(c.at_ms % WINDOW and c.before.run_ms for c in read)
