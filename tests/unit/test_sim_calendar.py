"""Ground truth for the calendar and micro-stops (pure): simulated machines work only in planned time, the
ledger records planned time and micro-stops, and the gateway core sees the same micro-stops."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

from ftel.contract.models import StateChange
from ftel.contract.states import MachineState
from ftel.plant.layout import default_plant
from ftel.plant.stops import micro_stop_limits_ms
from gateway.core import GatewayCore, GatewayTiming
from gateway.tracker import Origin
from simulators.driver import SimulatedDriver
from simulators.ledger import plant_ledger
from simulators.machine import plant_models
from tests.calendars import two_twelves

WINDOW = 60_000
# Saturday 18:00 to Sunday 10:00, Qinghe time: the day shift's end, the night shift with its two breaks, its end
# on Sunday morning and the start of the Sunday off.
START = int(datetime(2026, 11, 14, 18, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
END = START + 16 * 3_600_000
CALENDAR = two_twelves()


def test_machines_stand_idle_outside_planned_time_and_work_inside_it() -> None:
    spans = CALENDAR.planned_spans(START, END)
    assert len(spans) == 3  # 18:00-00:00, 00:30-05:00, 05:20-08:00
    for _, model in plant_models(default_plant(), start_ms=START, calendar=CALENDAR):
        running_outside = 0
        for segment in model.segments():
            if segment.start_ms >= END:
                break
            if segment.state is MachineState.RUNNING:
                inside = CALENDAR.planned_ms(segment.start_ms, segment.end_ms)
                running_outside += segment.end_ms - segment.start_ms - inside
        assert running_outside == 0, model.spec.id


def test_the_ledger_splits_every_window_into_planned_time_and_time_outside_shifts() -> None:
    rows = list(plant_ledger(default_plant(), start_ms=START, end_ms=END, window_ms=WINDOW, calendar=CALENDAR))
    planned = CALENDAR.planned_ms(START, END)
    assert sum(r.planned_ms for r in rows) == planned * 28
    # Every window is wholly observed here: its state time inside planned time is its planned time.
    assert all(sum(r.planned_state_ms.values()) == r.planned_ms for r in rows)
    outside = Counter[str]()
    for r in rows:
        outside.update({s: r.state_ms[s] - r.planned_state_ms[s] for s in r.state_ms})
    assert outside["RUNNING"] == 0
    assert outside["IDLE"] > 0.9 * (END - START - planned) * 28  # a stop may run on past the shift's end
    assert sum(r.planned_state_ms["RUNNING"] for r in rows) > 0.5 * planned * 28


def test_without_a_calendar_all_time_is_planned() -> None:
    rows = list(plant_ledger(default_plant(), start_ms=START, end_ms=START + 3_600_000, window_ms=WINDOW))
    assert all(r.planned_ms == WINDOW and r.planned_state_ms == r.state_ms for r in rows)


def test_the_gateway_sees_the_ledgers_micro_stops_at_their_end() -> None:
    """Through the gateway core: every state change out of DOWN that came sooner than the machine type's
    threshold is a micro-stop, counted when it ends; the ledger's, per machine and reason, count and time."""
    plant = default_plant()
    limits = micro_stop_limits_ms()
    ledger: Counter[tuple[str, str, str]] = Counter()
    for r in plant_ledger(plant, start_ms=START, end_ms=END, window_ms=WINDOW, calendar=CALENDAR):
        for reason, n in r.micro_stops_by_reason.items():
            ledger[(r.machine_id, reason, "count")] += n
            ledger[(r.machine_id, reason, "ms")] += r.micro_stop_ms_by_reason[reason]
    seen: Counter[tuple[str, str, str]] = Counter()
    for workshop in plant.workshops:
        drivers = {
            m.spec.id: SimulatedDriver(m)
            for _, m in plant_models(plant, start_ms=START, workshop=workshop.id, calendar=CALENDAR)
        }
        types = {machine_id: d.info.machine_type.value for machine_id, d in drivers.items()}
        core = GatewayCore(
            Origin(plant.site, workshop.id, workshop.gateway_id),
            [d.info for d in drivers.values()],
            GatewayTiming(WINDOW, 30_000, 10_000, 0.1, telemetry_spread=False),
            boot_id=START,
        )
        for at in [START, *core.read_times(START, END)]:
            for m in core.observe(at, {mid: d.read(at) for mid, d in drivers.items()}):
                short = isinstance(m, StateChange) and m.prev_duration_ms < limits[types[m.machine_id]]
                if short and isinstance(m, StateChange) and m.prev_state is MachineState.DOWN and m.prev_reason:
                    seen[(m.machine_id, m.prev_reason, "count")] += 1
                    seen[(m.machine_id, m.prev_reason, "ms")] += m.prev_duration_ms
    assert seen == ledger
    knitting = sum(n for (machine, _, kind), n in ledger.items() if kind == "count" and machine.startswith("KNIT"))
    assert knitting >= 10  # short yarn breaks on the knitting machines
