"""Plant overview: machines by state now, utilisation (range, today, trend), downtime Pareto, worst machines,
OEE per machine type. Figures over the range read the workshop roll-ups at the board's resolution, so the board
answers as fast for a county as for a workshop; it is narrowed by site, workshop and machine type (one machine:
Machine detail)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, table
from grafana_foundation_sdk.models import common

from dashboards import panels as p
from dashboards import queries as q
from dashboards.board import Board, Row
from ftel.contract.states import STATE_ORDER, MachineType
from ftel.plant.stops import micro_stop_limits_ms
from ftel.settings import DEFAULT_IDLE_UNEXPLAINED_S, DEFAULT_MICRO_STOP_S
from ftel.storage.schema import Tag, state_field

UID = "ftel-overview"


def machines_by_state() -> stat.Panel:
    panel = p.stat_panel(
        "Machines by state now",
        "How many machines of each workshop are in each state at the end of the range.",
        *(q.machines_in_state(s, q.WORKSHOP_VARIABLES) for s in STATE_ORDER),
        w=24,
        h=5,
    ).text_mode(common.BigValueTextMode.VALUE_AND_NAME)
    return p.state_colour_overrides(panel, ".* {state}$")


def utilisation_row() -> Row:
    today = p.ratio_stat(
        "Utilisation today (calendar time)",
        "Running time / observed time without OFFLINE, since midnight: over calendar time, so breaks and hours "
        "without a shift count (availability over planned time: the shift report).",
        q.utilisation(),
    ).time_from("now/d")
    return Row(
        "Utilisation",
        [
            p.ratio_stat(
                "Utilisation (calendar time), selected range",
                "Running time / observed time without OFFLINE over the selected range (a shift by default), over "
                "calendar time: breaks and hours without a shift count.",
                q.utilisation(),
            ),
            today,
            p.ratio_bars("Utilisation per workshop", "Over the selected range.", q.utilisation("workshop")),
            p.ratio_bars("Utilisation per machine type", "Over the selected range.", q.utilisation("machine_type")),
            p.timeseries(
                "Utilisation trend per workshop",
                "Utilisation in each interval; dips show where the time went.",
                q.utilisation_trend("workshop"),
                unit="percentunit",
                w=24,
            )
            .min(0)
            .max(1),
        ],
    )


def downtime_row() -> Row:
    pareto = p.bar_chart(
        "Downtime by classified reason (Pareto)",
        "Minutes DOWN per reason over the range, largest first: the controller's reason, or the operator's where "
        "the controller gave none (docs/operators.md); unknown_fault is what nobody explained. Settled by "
        "`ftel settle` (docs/calendar.md); the stops column counts stops begun.",
        q.downtime_by_reason(classified=True),
        x_field="reason",
        unit="m",
        sort_field="minutes",
        h=10,
    ).with_transformation(p.organise({"minutes": "Minutes down"}, hide=("Time", "stops")))
    worst = p.table_panel(
        "Ten machines with most downtime",
        "DOWN time per machine over the range (at 1h: the machines' hourly roll-ups).",
        q.worst_machines(reading=q.Reading("machine", q.WORKSHOP_VARIABLES)),
        h=10,
        transformations=[
            p.sort_by("down_ms"),
            p.organise({"down_ms": "Down", "machine_id": "Machine", "workshop": "Workshop"}),
        ],
    ).override_by_name("Down", p.unit_is("ms"))
    share = p.ratio_stat(
        "Downtime nobody explained",
        "The share of DOWN time still under unknown_fault once operators' reasons are taken in (settled by "
        "`ftel settle`).",
        q.unexplained_downtime_share(),
    )
    return Row("Downtime", [pareto, worst, share, micro_stops_table(), *unexplained_panels()])


def unexplained_panels() -> tuple[table.Panel, stat.Panel]:
    limit = f"{DEFAULT_IDLE_UNEXPLAINED_S / 60:g} min"
    without = p.table_panel(
        "Stops without a machine reason per workshop (observed time)",
        f"Stops that ended in the range with no reason from the machine: DOWN with unknown_fault (an unknown fault "
        f"code, a stack-light tap's red; micro-stops apart) and IDLE of {limit} or more, how many and how long. "
        "Over observed time: "
        "the shift report counts only the planned time of an IDLE and splits them into unexplained and classified "
        "(docs/boards.md).",
        q.without_machine_reason(int(DEFAULT_IDLE_UNEXPLAINED_S * 1000), micro_stop_limits_ms(), Tag.WORKSHOP),
        w=16,
        h=6,
        transformations=[p.organise({"workshop": "Workshop", "stops": "Stops", "ms": "Time"})],
    ).override_by_name("Time", p.unit_is("ms"))
    classified = p.stat_panel(
        "Stops classified by operators",
        "Stops without a machine reason that began in the range and that an operator gave a reason on the operator "
        "page (docs/operators.md); a correction replaces a reason, so each stop counts once.",
        q.classified_stops(),
        w=8,
        h=6,
    )
    return without, classified


def micro_stops_table() -> table.Panel:
    limits = ", ".join(f"{t} {s:g} s" for t, s in sorted(DEFAULT_MICRO_STOP_S.items()))
    return p.table_panel(
        "Micro-stops per machine type",
        f"Stops shorter than their machine type's threshold ({limits}) that ended in the range: how many and how "
        "long in all. They are part of the downtime above too; counted apart, the Pareto's long stops stand out.",
        q.micro_stops(micro_stop_limits_ms(), Tag.MACHINE_TYPE, variables=q.WORKSHOP_VARIABLES),
        w=24,
        h=6,
        transformations=[p.organise({"machine_type": "Machine type", "stops": "Micro-stops", "ms": "Time"})],
    ).override_by_name("Time", p.unit_is("ms"))


def oee_row() -> Row:
    settled = "Settled from the calendar by `ftel settle` (docs/calendar.md): the last minutes show after its next run."
    oee = [
        p.ratio_stat(
            f"OEE (planned time), {t.value}",
            "Over the plant calendar's planned time (shifts less breaks, days off and holidays left out): "
            "availability (running / (planned - offline - setup - maintenance)), performance (units / rated units "
            f"for running time), quality (good / all units) and their product, as the shift report. {settled}",
            q.oee(t, over="planned"),
            w=8,
        ).text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        for t in MachineType
    ]
    calendar_time = p.table_panel(
        "Machine time inside planned time and outside shifts",
        "Machine time in each state over the range, inside the calendar's planned time and outside it (breaks, "
        f"nights without a shift, days off): time outside shifts is its own category, never lost time. {settled}",
        q.calendar_time(),
        w=24,
        h=5,
        transformations=[p.organise({"planned": "Calendar", **{state_field(s): s.value for s in STATE_ORDER}})],
    )
    for state in STATE_ORDER:
        calendar_time = calendar_time.override_by_name(state.value, p.unit_is("ms"))
    return Row("OEE", [*oee, calendar_time])


def board() -> Board:
    return Board(
        uid=UID,
        title="Plant overview",
        description="How busy every machine is, what is down now and where the downtime goes.",
        variables=p.workshop_variables(),
        rows=[Row("Now", [machines_by_state()]), utilisation_row(), downtime_row(), oee_row()],
    )
