"""Every InfluxQL statement a board or the shift report runs, defined once (pure; no I/O).

Statements are written with Grafana's variables, exactly as a panel sends them:

- ``$timeFilter`` (the dashboard range), ``$__interval`` (the panel's bucket), ``${__to}`` (the range end
  in epoch ms, for "now" questions that must look back before the range start);
- ``$site``, ``$workshop``, ``$machine_type``, ``$machine``: dashboard variables, always used as
  ``"tag" =~ /^$var$/`` so that one value, several values (Grafana renders ``(a|b)``) and All (``.*``)
  all work;
- ``${resolution:raw}``: the board's resolution (below), put in as it is (not regex-escaped).

``bind`` puts concrete values in their place the way Grafana does; the shift report and the tests use it, so
the report, the tests and the boards run the same text. Definitions follow docs/schema.md: utilisation =
running / (observed - offline); availability = running / (observed - offline - setup - maintenance);
performance = units / rated units for the running time; quality = good / total units.

Where a question over the range reads (docs/boards.md gives users the rule):

- workshop questions (utilisation, OEE, downtime by reason; per site, workshop or machine type) read the
  gateways' workshop roll-ups: at ``1m`` each gateway window (the very windows of the raw points, so the same
  answer for any range), at ``1h`` each hour that starts in the range;
- per-machine questions (worst machines, repeated faults) read each machine's own windows at ``1m`` and its
  machine hours at ``1h``;
- one machine's detail, each machine's state now and telemetry read the raw points; how many machines are in each
  state now reads ``rollup_state_now``, settled every minute from the raw points (dashboards/state_now.py).

A board reads its whole range at its ``$resolution`` variable (``Reading`` with the board's ``Slice``). The
report knows its range and splits it (``range_slices``): the whole hours inside it at ``1h``, the minutes before
the first and after the last whole hour at ``1m``; so it is exact for any range and reads an hour as one point.

The current state of a machine is the last ``machine_state`` point at or before the range end, looked back
``STATE_LOOKBACK`` (the retention policy must be the database's default, as ``ftel stack`` creates it).
How many machines are in each state "now" is the last settled snapshot at or before the range end, looked back
``STATE_NOW_LOOKBACK``: a county's 60,000 machines are 60,000 series to take the last point of, a snapshot is one
point per workshop and machine type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from dashboards.errors import QueryShapeError, UnboundVariableError
from ftel.contract.states import STATE_ORDER, UNKNOWN_FAULT, MachineState, MachineType
from ftel.settings import DEFAULT_WINDOW_S
from ftel.storage.schema import PLANNED_INSIDE, Field, Measurement, Tag, machines_field, resolution, state_field

# How far back "now" questions look for the last state change, telemetry sample or machine description.
STATE_LOOKBACK = "7d"
TELEMETRY_LOOKBACK = "1h"
META_LOOKBACK = "30d"
# The state-now snapshot is settled every minute (FTEL_SETTLE__EVERY_S): an older one is not "now".
STATE_NOW_LOOKBACK = "1h"
# A gateway is online when its last status says so; gateways are looked back this far.
GATEWAY_LOOKBACK = "30d"
# Three stops of one reason on one machine in the range is a repeated fault worth a maintenance look.
REPEATED_FAULT_STOPS = 3
WORST_MACHINES = 10

# Nameplate output per machine type, units per running hour: the rate performance is measured against.
# These are the plant's standards; the simulated machines are built to them (a unit test checks they agree).
RATED_UNITS_PER_HOUR: Mapping[MachineType, float] = {
    MachineType.CARDING: 8.0,
    MachineType.SPINNING: 20.0,
    MachineType.KNITTING: 5.0,
}

MS_PER_HOUR = 3_600_000
MS_PER_MINUTE = 60_000

# The gateways' window (the settings' default; the boards assume every gateway keeps it), the boards' smallest
# bucket.
WINDOW_MS = DEFAULT_WINDOW_S * 1000
# Roll-up resolutions. MINUTE is the gateways' window: a 1m roll-up holds the same windows as the raw points.
# HOUR is the gateways' hourly roll-up.
MINUTE = resolution(WINDOW_MS)
HOUR = resolution(MS_PER_HOUR)
RESOLUTION = "resolution"  # the boards' dashboard variable
DEFAULT_RESOLUTION = MINUTE
# What the resolution tag must match (a regular expression) at each resolution. A machine's own windows carry
# no resolution tag, so at one minute per-machine questions read them, and workshop questions the 1m roll-ups.
RESOLUTION_PATTERNS: Mapping[str, str] = {MINUTE: f"{MINUTE}|", HOUR: HOUR}

Format = Literal["time_series", "table"]


@dataclass(frozen=True, slots=True)
class Query:
    """One InfluxQL statement with Grafana variables, and how Grafana should shape its result."""

    name: str
    influxql: str
    format: Format = "time_series"
    # Grafana's series alias pattern for time series results ($tag_<key> is the value of a group-by tag).
    alias: str = ""


# Dashboard variables in the order they narrow each other down.
SITE, WORKSHOP, MACHINE_TYPE, MACHINE = "site", "workshop", "machine_type", "machine"
VARIABLE_TAGS: Mapping[str, str] = {
    SITE: Tag.SITE,
    WORKSHOP: Tag.WORKSHOP,
    MACHINE_TYPE: Tag.MACHINE_TYPE,
    MACHINE: Tag.MACHINE_ID,
}
MACHINE_VARIABLES = (SITE, WORKSHOP, MACHINE_TYPE, MACHINE)
# What a workshop roll-up can be narrowed by: it has no machine.
WORKSHOP_VARIABLES = (SITE, WORKSHOP, MACHINE_TYPE)
GATEWAY_VARIABLES = (SITE, WORKSHOP)
# Grafana's own variables: bound from the time range and the panel width, never defined on a board.
BUILTIN_VARIABLES = frozenset({"timeFilter", "__interval", "__to", "__from"})


def _n(name: str) -> str:
    """An identifier (measurement, tag, field or alias), quoted."""
    return f'"{name}"'


def _sum(name: str, alias: str | None = None) -> str:
    return f"sum({_n(name)}) AS {_n(alias or name)}"


def matches(variables: Sequence[str]) -> str:
    """``"site" =~ /^$site$/ AND …`` for the given dashboard variables."""
    return " AND ".join(f"{_n(VARIABLE_TAGS[v])} =~ /^${v}$/" for v in variables)


def looking_back(duration: str) -> str:
    """Points at or before the range end, no further back than ``duration``."""
    return f"time <= ${{__to}}ms AND time > ${{__to}}ms - {duration}"


def _group_by(*tags: str) -> str:
    return ", ".join(_n(t) for t in tags)


def _grouped(*tags: str) -> str:
    return f" GROUP BY {_group_by(*tags)}" if tags else ""


def _suffix(*tags: str) -> str:
    return "".join(f"_by_{t}" for t in tags)


# --- where a question over the range reads ----------------------------------------------------------------

Level = Literal["workshop", "machine"]
# "planned": state times split at the calendar's planned time, "classified": downtime per attributed reason
# (both settled for the boards from the workshop roll-ups, dashboards/settle.py; workshop level only).
Kind = Literal["state", "downtime", "planned", "classified"]

# The fields a slice hands on when several slices are added up in one statement.
KIND_FIELDS: Mapping[Kind, tuple[str, ...]] = {
    "state": (*(state_field(s) for s in STATE_ORDER), Field.OBSERVED_MS, Field.UNITS, Field.DEFECTS),
    "downtime": (Field.DOWN_MS, Field.STOPS),
    "planned": (*(state_field(s) for s in STATE_ORDER), Field.OBSERVED_MS, Field.UNITS, Field.DEFECTS),
    "classified": (Field.DOWN_MS, Field.STOPS, Field.UNEXPLAINED_MS),
}
SOURCES: Mapping[tuple[Level, Kind], tuple[str, str]] = {
    # (level, kind) -> (the raw windows, or a workshop's 1m roll-ups; the hourly roll-ups)
    ("workshop", "state"): (Measurement.ROLLUP_STATE_TIME, Measurement.ROLLUP_STATE_TIME),
    ("workshop", "downtime"): (Measurement.ROLLUP_DOWNTIME, Measurement.ROLLUP_DOWNTIME),
    ("workshop", "planned"): (Measurement.ROLLUP_PLANNED_TIME, Measurement.ROLLUP_PLANNED_TIME),
    ("workshop", "classified"): (Measurement.ROLLUP_CLASSIFIED_DOWNTIME, Measurement.ROLLUP_CLASSIFIED_DOWNTIME),
    ("machine", "state"): (Measurement.STATE_TIME, Measurement.MACHINE_HOURS),
    ("machine", "downtime"): (Measurement.DOWNTIME, Measurement.MACHINE_HOURS_DOWNTIME),
}


@dataclass(frozen=True, slots=True)
class Slice:
    """A part of the range and the resolution it is read at: ``MINUTE``, ``HOUR`` or the board's variable."""

    time: str
    resolution: str

    @property
    def pattern(self) -> str:
        return RESOLUTION_PATTERNS.get(self.resolution, self.resolution)


# A board reads its whole range at the resolution its user chose.
BOARD_SLICE = Slice("$timeFilter", f"${{{RESOLUTION}:raw}}")
RAW_SLICE = Slice("$timeFilter", MINUTE)


@dataclass(frozen=True, slots=True)
class Reading:
    """Where a question over the range reads: the workshop roll-ups or each machine's own figures (``level``),
    narrowed by ``variables``, over ``slices`` of the range (several only for workshops: the slices of one
    measurement add up in one statement, those of two measurements cannot)."""

    level: Level
    variables: tuple[str, ...]
    slices: tuple[Slice, ...] = field(default=(BOARD_SLICE,))

    def __post_init__(self) -> None:
        if not self.slices:
            raise QueryShapeError("a reading needs at least one slice of the range")
        if self.level == "machine" and len(self.slices) > 1:
            raise QueryShapeError("per-machine figures come from two measurements: read one slice per statement")
        if self.level == "workshop" and MACHINE in self.variables:
            raise QueryShapeError("a workshop roll-up has no machine to narrow it by: read the raw windows")

    def with_slices(self, slices: Sequence[Slice]) -> Reading:
        return Reading(self.level, self.variables, tuple(slices))


# Workshop panels, per-machine panels (at the board's resolution) and one machine's own windows (drill-down).
WORKSHOPS = Reading("workshop", WORKSHOP_VARIABLES)
EACH_MACHINE = Reading("machine", MACHINE_VARIABLES)
ONE_MACHINE = Reading("machine", MACHINE_VARIABLES, (RAW_SLICE,))


def _slice_source(level: Level, kind: Kind, piece: Slice) -> tuple[list[str], list[str]]:
    """Measurements and the resolution condition of one slice."""
    if (level, kind) not in SOURCES:
        raise QueryShapeError(f"{kind} figures are settled per workshop only: read them with a workshop reading")
    fine, hourly = SOURCES[(level, kind)]
    condition = [f"{_n(Tag.RESOLUTION)} =~ /^({piece.pattern})$/"]
    if level == "workshop":
        return [fine], condition
    if piece.resolution == MINUTE:
        return [fine], []  # a machine's own windows: no resolution tag to match
    if piece.resolution == HOUR:
        return [hourly], condition
    return [fine, hourly], condition  # the board's choice: the condition leaves one of them


def source(reading: Reading, kind: Kind, *conditions: str) -> str:
    """``FROM … WHERE …`` of a question over the range: the points of ``kind`` in each slice that the reading's
    variables and ``conditions`` select; several slices are added up as subqueries."""
    parts: list[tuple[str, str]] = []
    for piece in reading.slices:
        measurements, resolution_condition = _slice_source(reading.level, kind, piece)
        where = " AND ".join([piece.time, matches(reading.variables), *conditions, *resolution_condition])
        parts.append((", ".join(_n(m) for m in measurements), where))
    if len(parts) == 1:
        return "FROM {} WHERE {}".format(*parts[0])
    fields = ", ".join(_n(f) for f in KIND_FIELDS[kind])
    return "FROM " + ", ".join(f"(SELECT {fields} FROM {m} WHERE {where})" for m, where in parts)


def between(start_ms: int, end_ms: int) -> str:
    """The time condition of [start_ms, end_ms)."""
    return f"time >= {start_ms}ms AND time < {end_ms}ms"


def range_slices(start_ms: int, end_ms: int, *, hours_until_ms: int | None = None) -> tuple[Slice, ...]:
    """[start_ms, end_ms) as the report reads it: its whole hours at ``HOUR``, the minutes before the first and
    after the last whole hour at ``MINUTE``. Exact for any range: a window counts when it starts in the range, as
    with the raw points; a shift from 08:00 to 16:00 is eight hourly points per series. Only hours ended by
    ``hours_until_ms`` are read at ``HOUR`` (their roll-ups are all there), later ones at ``MINUTE``."""
    first_hour = -(-start_ms // MS_PER_HOUR) * MS_PER_HOUR
    until = end_ms if hours_until_ms is None else min(end_ms, hours_until_ms)
    last_hour = until // MS_PER_HOUR * MS_PER_HOUR
    if first_hour >= last_hour:
        return (Slice(between(start_ms, end_ms), MINUTE),)
    pieces = ((start_ms, first_hour, MINUTE), (first_hour, last_hour, HOUR), (last_hour, end_ms, MINUTE))
    return tuple(Slice(between(start, end), at) for start, end, at in pieces if start < end)


# --- variables --------------------------------------------------------------------------------------------


def variable_values(variable: str) -> Query:
    """Values of one dashboard variable, narrowed by the variables before it."""
    index = MACHINE_VARIABLES.index(variable)
    where = matches(MACHINE_VARIABLES[:index])
    where_clause = f" WHERE {where}" if where else ""
    return Query(
        f"variable_{variable}",
        f"SHOW TAG VALUES FROM {_n(Measurement.STATE_TIME)} WITH KEY = {_n(VARIABLE_TAGS[variable])}{where_clause}",
        "table",
    )


# --- utilisation, availability, OEE -----------------------------------------------------------------------

RUNNING, OBSERVED, OFFLINE = (
    f"sum({_n(state_field(MachineState.RUNNING))})",
    f"sum({_n(Field.OBSERVED_MS)})",
    f"sum({_n(state_field(MachineState.OFFLINE))})",
)
UNITS, DEFECTS = f"sum({_n(Field.UNITS)})", f"sum({_n(Field.DEFECTS)})"
UTILISATION = f"{RUNNING} / ({OBSERVED} - {OFFLINE})"
# Planned production time: what is left when unobserved time and planned stops are taken out.
PLANNED_TIME = (
    f"{OBSERVED} - {OFFLINE} - sum({_n(state_field(MachineState.SETUP))}) "
    f"- sum({_n(state_field(MachineState.MAINTENANCE))})"
)


def utilisation(*by: str, reading: Reading = WORKSHOPS) -> Query:
    """Utilisation over the range, one row per combination of the ``by`` tags."""
    return Query(
        "utilisation" + _suffix(*by),
        f'SELECT {UTILISATION} AS "utilisation" {source(reading, "state")}{_grouped(*by)}',
        alias=" ".join(f"$tag_{t}" for t in by) or "utilisation",
    )


def utilisation_trend(by: str, reading: Reading = WORKSHOPS) -> Query:
    return Query(
        f"utilisation_trend_by_{by}",
        f'SELECT {UTILISATION} AS "utilisation" {source(reading, "state")} '
        f"GROUP BY time($__interval), {_n(by)} fill(none)",
        alias=f"$tag_{by}",
    )


def oee(
    machine_type: MachineType, reading: Reading = WORKSHOPS, *, over: Literal["observed", "planned"] = "observed"
) -> Query:
    """Availability, performance, quality and OEE of one machine type (units differ between types, so OEE
    is not summed across them). OEE = A * P * Q = good units / rated units for the planned production time.
    ``over``: all observed time, or only the calendar's planned time (the settled ``planned`` figures)."""
    rate = RATED_UNITS_PER_HOUR[machine_type]
    conditions = [f"{_n(Tag.MACHINE_TYPE)} = '{machine_type.value}'"]
    kind: Kind = "state"
    if over == "planned":
        kind = "planned"
        # A window outside shifts is settled as zero inside (for idempotency): left out, a day off has no OEE
        # instead of InfluxQL's 0 for 0 / 0.
        conditions += [f"{_n(Tag.PLANNED)} = '{PLANNED_INSIDE}'", f"{_n(Field.OBSERVED_MS)} > 0"]
    return Query(
        f"oee_{machine_type.value}" + ("_planned" if over == "planned" else ""),
        f'SELECT {RUNNING} / ({PLANNED_TIME}) AS "availability", '
        f'{UNITS} / ({RUNNING} * {rate:g} / {MS_PER_HOUR}) AS "performance", '
        f'({UNITS} - {DEFECTS}) / {UNITS} AS "quality", '
        f'({UNITS} - {DEFECTS}) / (({PLANNED_TIME}) * {rate:g} / {MS_PER_HOUR}) AS "oee" '
        f"{source(reading, kind, *conditions)}",
        "table",
    )


def oee_of(totals: Mapping[str, float], machine_type: MachineType) -> dict[str, float | None]:
    """Availability, performance, quality and OEE from summed fields (``state_totals``' columns), by the
    formulas of ``oee``: the report adds up figures over several readings (the planned spans of its period)."""

    def ratio(top: float, bottom: float) -> float | None:
        return top / bottom if bottom else None

    running = totals.get(state_field(MachineState.RUNNING), 0)
    planned = (
        totals.get(Field.OBSERVED_MS, 0)
        - totals.get(state_field(MachineState.OFFLINE), 0)
        - totals.get(state_field(MachineState.SETUP), 0)
        - totals.get(state_field(MachineState.MAINTENANCE), 0)
    )
    units, defects = totals.get(Field.UNITS, 0), totals.get(Field.DEFECTS, 0)
    rate = RATED_UNITS_PER_HOUR[machine_type] / MS_PER_HOUR
    return {
        "availability": ratio(running, planned),
        "performance": ratio(units, running * rate),
        "quality": ratio(units - defects, units),
        "oee": ratio(units - defects, planned * rate),
    }


def state_totals(*by: str, reading: Reading = WORKSHOPS) -> Query:
    """Milliseconds in each state, units and defects over the range, per ``by`` tags."""
    fields = ", ".join(_sum(f) for f in KIND_FIELDS["state"])
    return Query("state_totals" + _suffix(*by), f"SELECT {fields} {source(reading, 'state')}{_grouped(*by)}", "table")


def calendar_time(*by: str, reading: Reading = WORKSHOPS) -> Query:
    """Machine time in each state inside the calendar's planned time and outside shifts (one row each, the
    ``planned`` tag), per ``by`` tags, from the settled ``rollup_planned_time`` (dashboards/settle.py)."""
    fields = ", ".join(_sum(f) for f in KIND_FIELDS["planned"])
    return Query(
        "calendar_time" + _suffix(*by),
        f"SELECT {fields} {source(reading, 'planned')}{_grouped(Tag.PLANNED, *by)}",
        "table",
    )


# --- states now and over time -----------------------------------------------------------------------------


def _last_state(extra: str, variables: Sequence[str], *by: str) -> str:
    """Each machine's last state change at or before the range end (``state_code`` in STATE_ORDER order);
    ``last`` is the only selector, so the row keeps the time the state began and the extra fields of that
    same point."""
    return (
        f"SELECT last({_n(Field.STATE_CODE)}) AS {_n(Field.STATE_CODE)}{extra} FROM {_n(Measurement.MACHINE_STATE)} "
        f"WHERE {looking_back(STATE_LOOKBACK)} AND {matches(variables)} GROUP BY {_group_by(*by)}"
    )


def _current_states_select(variables: Sequence[str]) -> str:
    return _last_state(f", {_n(Field.REASON)}", variables, Tag.WORKSHOP, Tag.MACHINE_TYPE, Tag.MACHINE_ID)


def current_states(variables: Sequence[str] = MACHINE_VARIABLES) -> Query:
    """Each machine's state at the range end with its reason, stamped when it began."""
    return Query("current_states", _current_states_select(variables), "table")


def current_state_codes(variables: Sequence[str] = MACHINE_VARIABLES) -> Query:
    """Each machine's state code at the range end as one series per machine: a grid of tiles."""
    return Query("current_state_codes", _last_state("", variables, Tag.MACHINE_ID), alias="$tag_machine_id")


def machine_last_states(variables: Sequence[str] = MACHINE_VARIABLES) -> Query:
    """Each machine's state code at the range end, with its site, workshop and type: what a state-now snapshot
    counts (dashboards/state_now.py)."""
    return Query(
        "machine_last_states",
        _last_state("", variables, Tag.SITE, Tag.WORKSHOP, Tag.MACHINE_TYPE, Tag.MACHINE_ID),
        "table",
    )


def machines_in_state_from_points(state: MachineState, variables: Sequence[str] = MACHINE_VARIABLES) -> Query:
    """How many machines of each workshop are in ``state`` at the range end, from every machine's last change
    (InfluxDB's cost is per machine: seconds at 60,000). What ``machines_in_state`` equals, read from the raw
    points: a selection of machines, the tests and the benchmark's "before"."""
    code = STATE_ORDER.index(state)
    lean = _last_state("", variables, Tag.WORKSHOP, Tag.MACHINE_ID)
    return Query(
        f"machines_{state.value.lower()}",
        f'SELECT count({_n(Field.STATE_CODE)}) AS "machines" FROM ({lean}) '
        f"WHERE {_n(Field.STATE_CODE)} = {code} GROUP BY {_n(Tag.WORKSHOP)}",
        alias=f"$tag_workshop {state.value}",
    )


def _state_now(states: Sequence[MachineState], variables: Sequence[str]) -> str:
    """The last state-now snapshot at or before the range end of each workshop and machine type."""
    fields = ", ".join(f"last({_n(machines_field(s))}) AS {_n(machines_field(s))}" for s in states)
    return (
        f"SELECT {fields} FROM {_n(Measurement.ROLLUP_STATE_NOW)} WHERE {looking_back(STATE_NOW_LOOKBACK)} AND "
        f"{matches(variables)} GROUP BY {_group_by(Tag.SITE, Tag.WORKSHOP, Tag.MACHINE_TYPE)}"
    )


def machines_in_state(state: MachineState, variables: Sequence[str] = WORKSHOP_VARIABLES) -> Query:
    """How many machines of each workshop are in ``state`` at the range end, from the settled snapshot (one point
    per workshop and machine type, whatever the fleet): equal to ``machines_in_state_from_points`` at the
    snapshot's minute."""
    if MACHINE in variables:
        raise QueryShapeError("the state-now snapshot has no machine to narrow it by: count the raw points")
    field_ = machines_field(state)
    return Query(
        f"machines_{state.value.lower()}",
        f'SELECT sum({_n(field_)}) AS "machines" FROM ({_state_now((state,), variables)}) GROUP BY {_n(Tag.WORKSHOP)}',
        alias=f"$tag_workshop {state.value}",
    )


def machines_by_state(variables: Sequence[str] = WORKSHOP_VARIABLES) -> Query:
    """How many machines of each workshop are in each state at the range end (a column per state, named by
    ``machines_field``), from the settled snapshot: the report's counts in one statement."""
    if MACHINE in variables:
        raise QueryShapeError("the state-now snapshot has no machine to narrow it by: count the raw points")
    sums = ", ".join(_sum(machines_field(s)) for s in STATE_ORDER)
    return Query(
        "machines_by_state",
        f"SELECT {sums} FROM ({_state_now(STATE_ORDER, variables)}) GROUP BY {_n(Tag.WORKSHOP)}",
        "table",
    )


def down_now(variables: Sequence[str] = MACHINE_VARIABLES) -> Query:
    """Machines DOWN at the range end, with the reason; the time is when the stop began."""
    code = STATE_ORDER.index(MachineState.DOWN)
    return Query(
        "down_now",
        f"SELECT {_n(Field.STATE_CODE)}, {_n(Field.REASON)} FROM ({_current_states_select(variables)}) "
        f"WHERE {_n(Field.STATE_CODE)} = {code} GROUP BY {_group_by(Tag.WORKSHOP, Tag.MACHINE_ID)}",
        "table",
    )


def state_changes() -> Query:
    """Every state change in the range, per machine: what a state timeline draws."""
    return Query(
        "state_changes",
        f"SELECT {_n(Field.STATE)} FROM {_n(Measurement.MACHINE_STATE)} WHERE $timeFilter AND "
        f"{matches(MACHINE_VARIABLES)} GROUP BY {_group_by(Tag.WORKSHOP, Tag.MACHINE_ID)}",
        alias="$tag_machine_id",
    )


# --- downtime ---------------------------------------------------------------------------------------------


def downtime_by_reason(reading: Reading = WORKSHOPS, *, classified: bool = False) -> Query:
    """Minutes DOWN and stops begun per reason: the controller's, or (``classified``, from the settled
    ``rollup_classified_downtime``) the controller's where it gave one and an operator's where it gave none,
    what nobody explained staying under unknown_fault."""
    return Query(
        "classified_downtime_by_reason" if classified else "downtime_by_reason",
        f'SELECT sum({_n(Field.DOWN_MS)}) / {MS_PER_MINUTE} AS "minutes", {_sum(Field.STOPS)} '
        f"{source(reading, 'classified' if classified else 'downtime')} GROUP BY {_n(Tag.REASON)}",
        "table",
    )


def unexplained_downtime_share(reading: Reading = WORKSHOPS) -> Query:
    """The share of DOWN time that nobody explained (still unknown_fault once operators' reasons are taken in),
    from the settled classified downtime."""
    return Query(
        "unexplained_downtime_share",
        f'SELECT sum({_n(Field.UNEXPLAINED_MS)}) / sum({_n(Field.DOWN_MS)}) AS "share" {source(reading, "classified")}',
        "table",
    )


def machine_downtime(reading: Reading) -> Query:
    """DOWN time of each machine over the range: what the report adds up across slices for worst machines."""
    return Query(
        "machine_downtime",
        f"SELECT {_sum(Field.DOWN_MS)} {source(reading, 'state')}{_grouped(Tag.WORKSHOP, Tag.MACHINE_ID)}",
        "table",
    )


def worst_machines(count: int = WORST_MACHINES, reading: Reading = EACH_MACHINE) -> Query:
    """The ``count`` machines with the most DOWN time in the range (milliseconds)."""
    down = _n(Field.DOWN_MS)
    return Query(
        "worst_machines",
        f"SELECT top({down}, {_n(Tag.MACHINE_ID)}, {_n(Tag.WORKSHOP)}, {count}) AS {down} FROM "
        f"({machine_downtime(reading).influxql})",
        "table",
    )


def stops() -> Query:
    """Every finished stop in the range: reason and duration, stamped when the machine left DOWN."""
    return Query(
        "stops",
        f'SELECT {_n(Field.PREV_REASON)} AS "reason", {_n(Field.PREV_DURATION_MS)} AS "duration_ms" '
        f"FROM {_n(Measurement.MACHINE_STATE)} WHERE $timeFilter AND {matches(MACHINE_VARIABLES)} "
        f"AND {_n(Field.PREV_STATE)} = '{MachineState.DOWN.value}' GROUP BY {_n(Tag.MACHINE_ID)}",
        "table",
    )


def micro_stops(limits_ms: Mapping[str, int], *by: str, variables: Sequence[str] = MACHINE_VARIABLES) -> Query:
    """Micro-stops that ended in the range: stops shorter than their machine type's limit (``limits_ms``, per
    machine type), counted and timed apart. Each state change out of DOWN carries the stop's exact duration
    (the gateway knows when it began) and is stamped when it ended, so a stop across windows counts once, whole,
    where it ends."""
    duration = _n(Field.PREV_DURATION_MS)
    short = " OR ".join(
        f"({_n(Tag.MACHINE_TYPE)} = '{machine_type}' AND {duration} < {limit})"
        for machine_type, limit in sorted(limits_ms.items())
    )
    return Query(
        "micro_stops" + _suffix(*by),
        f'SELECT count({duration}) AS "stops", sum({duration}) AS "ms" FROM {_n(Measurement.MACHINE_STATE)} '
        f"WHERE $timeFilter AND {matches(variables)} AND {_n(Field.PREV_STATE)} = '{MachineState.DOWN.value}' "
        f"AND ({short}){_grouped(*by)}",
        "table",
    )


def stops_ended(variables: Sequence[str] = MACHINE_VARIABLES) -> Query:
    """Every DOWN and IDLE stop that ended in the range, whole (stamped at its end, with its exact duration): the
    report keeps those without a machine reason (ftel/plant/reasons.py)."""
    states = " OR ".join(f"{_n(Field.PREV_STATE)} = '{s.value}'" for s in (MachineState.DOWN, MachineState.IDLE))
    return Query(
        "stops_ended",
        f"SELECT {_n(Field.PREV_STATE)}, {_n(Field.PREV_REASON)}, {_n(Field.PREV_DURATION_MS)} "
        f"FROM {_n(Measurement.MACHINE_STATE)} WHERE $timeFilter AND {matches(variables)} AND ({states})"
        f"{_grouped(Tag.SITE, Tag.WORKSHOP, Tag.MACHINE_TYPE, Tag.MACHINE_ID)}",
        "table",
    )


def without_machine_reason(
    idle_limit_ms: int, micro_stop_ms: Mapping[str, int], *by: str, variables: Sequence[str] = WORKSHOP_VARIABLES
) -> Query:
    """Stops without a machine reason that ended in the range, whole, over observed time (a board does not know
    the calendar): DOWN with unknown_fault (micro-stops apart: at least its machine type's ``micro_stop_ms``), and
    IDLE at least ``idle_limit_ms`` long. How many, and how long."""
    duration = _n(Field.PREV_DURATION_MS)
    long_enough = " OR ".join(
        f"({_n(Tag.MACHINE_TYPE)} = '{t.value}' AND {duration} >= {micro_stop_ms.get(t.value, 0)})" for t in MachineType
    )
    down = (
        f"({_n(Field.PREV_STATE)} = '{MachineState.DOWN.value}' AND {_n(Field.PREV_REASON)} = '{UNKNOWN_FAULT}' "
        f"AND ({long_enough}))"
    )
    idle = f"({_n(Field.PREV_STATE)} = '{MachineState.IDLE.value}' AND {duration} >= {idle_limit_ms})"
    return Query(
        "without_machine_reason" + _suffix(*by),
        f'SELECT count({duration}) AS "stops", sum({duration}) AS "ms" FROM {_n(Measurement.MACHINE_STATE)} '
        f"WHERE $timeFilter AND {matches(variables)} AND ({down} OR {idle}){_grouped(*by)}",
        "table",
    )


def classified_stops(*by: str, variables: Sequence[str] = WORKSHOP_VARIABLES) -> Query:
    """Stops an operator gave a reason, begun in the range (one point per stop: a correction counts once)."""
    return Query(
        "classified_stops" + _suffix(*by),
        f'SELECT count({_n(Field.REASON)}) AS "stops" FROM {_n(Measurement.STOP_REASON)} '
        f"WHERE $timeFilter AND {matches(variables)}{_grouped(*by)}",
        "table",
    )


def stop_reasons(variables: Sequence[str] = MACHINE_VARIABLES) -> Query:
    """People's reasons for stops that started in the range (one point per stop, at its start)."""
    return Query(
        "stop_reasons",
        f"SELECT {_n(Field.REASON)}, {_n(Field.SET_BY)} FROM {_n(Measurement.STOP_REASON)} "
        f"WHERE $timeFilter AND {matches(variables)}{_grouped(Tag.MACHINE_ID)}",
        "table",
    )


def mttr(reading: Reading = ONE_MACHINE) -> Query:
    return Query(
        "mttr",
        f'SELECT sum({_n(Field.DOWN_MS)}) / sum({_n(Field.STOPS)}) AS "mttr_ms" {source(reading, "downtime")}',
    )


def running_time(reading: Reading = ONE_MACHINE) -> Query:
    running = state_field(MachineState.RUNNING)
    return Query("running_time", f"SELECT {_sum(running)} {source(reading, 'state')}")


def stop_count(reading: Reading = ONE_MACHINE) -> Query:
    return Query("stop_count", f"SELECT {_sum(Field.STOPS)} {source(reading, 'downtime')}")


def repeated_faults(min_stops: int = REPEATED_FAULT_STOPS, reading: Reading = EACH_MACHINE) -> Query:
    by = _group_by(Tag.WORKSHOP, Tag.MACHINE_ID, Tag.REASON)
    stops_ = _n(Field.STOPS)
    return Query(
        "repeated_faults",
        f"SELECT {stops_} FROM (SELECT {_sum(Field.STOPS)} {source(reading, 'downtime')} GROUP BY {by}) "
        f"WHERE {stops_} >= {min_stops} GROUP BY {by}",
        "table",
    )


# --- machine detail ---------------------------------------------------------------------------------------


def speed() -> Query:
    return Query(
        "speed",
        f"SELECT mean({_n(Field.SPEED)}) AS {_n(Field.SPEED)} FROM {_n(Measurement.TELEMETRY)} "
        f"WHERE $timeFilter AND {matches(MACHINE_VARIABLES)} "
        f"GROUP BY time($__interval), {_n(Tag.MACHINE_ID)} fill(none)",
        alias="$tag_machine_id speed",
    )


def machine_info(name: str) -> Query:
    """A nameplate figure (``rated_speed``, ``service_interval_h``) per machine, written at gateway start."""
    return Query(
        f"machine_info_{name}",
        f"SELECT last({_n(name)}) AS {_n(name)} FROM {_n(Measurement.MACHINE_INFO)} "
        f"WHERE {looking_back(META_LOOKBACK)} AND {matches(MACHINE_VARIABLES)} GROUP BY {_n(Tag.MACHINE_ID)}",
        "table",
    )


def counters() -> Query:
    return Query(
        "counters",
        f'SELECT last({_n(Field.UNITS_TOTAL)}) AS "units", last({_n(Field.DEFECTS_TOTAL)}) AS "defects" '
        f"FROM {_n(Measurement.TELEMETRY)} WHERE $timeFilter AND {matches(MACHINE_VARIABLES)} "
        f"GROUP BY time($__interval), {_n(Tag.MACHINE_ID)} fill(none)",
        alias="$tag_machine_id $col",
    )


def run_hours_since_service() -> Query:
    return Query(
        "run_hours_since_service",
        f'SELECT last({_n(Field.RUN_MS_SINCE_SERVICE)}) / {MS_PER_HOUR} AS "run_hours" '
        f"FROM {_n(Measurement.TELEMETRY)} WHERE {looking_back(TELEMETRY_LOOKBACK)} AND "
        f"{matches(MACHINE_VARIABLES)} GROUP BY {_group_by(Tag.WORKSHOP, Tag.MACHINE_ID)}",
        "table",
    )


def open_alerts() -> Query:
    """Alerts whose last lifecycle change left them firing or acknowledged (status_code 0 or 1)."""
    by = _group_by(Tag.WORKSHOP, Tag.RULE, Tag.SEVERITY, Tag.SUBJECT)
    status, code = _n(Field.STATUS), _n(Field.STATUS_CODE)
    return Query(
        "open_alerts",
        f"SELECT {status}, {_n(Field.SUMMARY)}, {_n(Field.VALUE)} FROM (SELECT last({code}) AS {code}, {status}, "
        f"{_n(Field.SUMMARY)}, {_n(Field.VALUE)} FROM {_n(Measurement.ALERTS)} "
        f"WHERE {looking_back(STATE_LOOKBACK)} AND {matches(GATEWAY_VARIABLES)} GROUP BY {by}) "
        f"WHERE {code} < 2 GROUP BY {by}",
        "table",
    )


# --- pipeline health --------------------------------------------------------------------------------------

_HEALTH = _n(Measurement.INGEST_HEALTH)
_BY_WORKER = f"GROUP BY time($__interval), {_n(Tag.WORKER)} fill(none)"


def ingest_rate(counter: str) -> Query:
    """Per-second rate of one cumulative ingest counter, per worker (a restart never counts negative)."""
    return Query(
        f"ingest_rate_{counter}",
        f'SELECT non_negative_derivative(last({_n(counter)}), 1s) AS "{counter}_per_s" FROM {_HEALTH} '
        f"WHERE $timeFilter {_BY_WORKER}",
        alias=f"$tag_worker {counter}/s",
    )


def ingest_increase(counter: str) -> Query:
    """How much one cumulative ingest counter grew in each bucket, per worker."""
    return Query(
        f"ingest_increase_{counter}",
        f"SELECT non_negative_difference(last({_n(counter)})) AS {_n(counter)} FROM {_HEALTH} "
        f"WHERE $timeFilter {_BY_WORKER}",
        alias=f"$tag_worker {counter}",
    )


def ingest_gauge(name: str, aggregate: Literal["max", "mean"] = "max") -> Query:
    return Query(
        f"ingest_{aggregate}_{name}",
        f"SELECT {aggregate}({_n(name)}) AS {_n(name)} FROM {_HEALTH} WHERE $timeFilter {_BY_WORKER}",
        alias=f"$tag_worker {aggregate} {name}",
    )


def dead_letters() -> Query:
    return Query(
        "dead_letters",
        f"SELECT {_n(Field.TOPIC)}, {_n(Field.REASON)}, {_n(Field.SIZE)} FROM {_n(Measurement.DEAD_LETTER)} "
        f"WHERE $timeFilter GROUP BY {_n(Tag.WORKER)}",
        "table",
    )


GATEWAY_STATUS_SELECT = (
    f"SELECT last({_n(Field.ONLINE)}) AS {_n(Field.ONLINE)} FROM {_n(Measurement.GATEWAY_STATUS)} "
    f"WHERE {looking_back(GATEWAY_LOOKBACK)} AND {matches(GATEWAY_VARIABLES)} "
    f"GROUP BY {_group_by(Tag.WORKSHOP, Tag.GATEWAY_ID)}"
)


def gateway_status() -> Query:
    return Query("gateway_status", GATEWAY_STATUS_SELECT, "table")


def gateways_online() -> Query:
    return Query(
        "gateways_online",
        f'SELECT count({_n(Field.ONLINE)}) AS "gateways" FROM ({GATEWAY_STATUS_SELECT}) '
        f"WHERE {_n(Field.ONLINE)} = true",
    )


def spool_depth() -> Query:
    return Query(
        "spool_depth",
        f"SELECT max({_n(Field.SPOOL_DEPTH)}) AS {_n(Field.SPOOL_DEPTH)} FROM {_n(Measurement.GATEWAY_HEARTBEAT)} "
        f"WHERE $timeFilter AND {matches(GATEWAY_VARIABLES)} "
        f"GROUP BY time($__interval), {_n(Tag.GATEWAY_ID)} fill(none)",
        alias="$tag_gateway_id spool",
    )


# --- binding ----------------------------------------------------------------------------------------------

# $name, ${name} and ${name:format} (Grafana's advanced formats; only :raw is used here).
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")
ALL: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Binding:
    """Concrete values for a statement: the half-open range [start_ms, end_ms), the bucket for
    ``$__interval``, each dashboard variable's selected values (``ALL``, the empty tuple, selects all) and the
    board's resolution."""

    start_ms: int
    end_ms: int
    interval_ms: int = WINDOW_MS
    variables: Mapping[str, Sequence[str]] | None = None
    resolution: str = DEFAULT_RESOLUTION

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise QueryShapeError(
                f"empty time range: {self.start_ms} .. {self.end_ms} (ms): the end must come after the start"
            )
        if self.interval_ms <= 0:
            raise QueryShapeError(f"interval_ms must be positive, not {self.interval_ms}")
        if self.resolution not in RESOLUTION_PATTERNS:
            raise QueryShapeError(f"resolution {self.resolution!r}: use one of {', '.join(RESOLUTION_PATTERNS)}")


def _regex_value(values: Sequence[str]) -> str:
    """What Grafana puts in ``/^$var$/`` for a selection: All is ``.*``, several values ``(a|b)``."""
    if not values:
        return ".*"
    escaped = [re.sub(r"([\\/.*+?^$()\[\]{}|-])", r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def bind(influxql: str, binding: Binding) -> str:
    """The statement as Grafana would send it for this range, bucket and selection.

    Grafana's ``$timeFilter`` has an inclusive end; the half-open range is kept by ending 1 ms early.
    """
    last_ms = binding.end_ms - 1
    builtins = {
        "timeFilter": f"time >= {binding.start_ms}ms AND time <= {last_ms}ms",
        "__interval": f"{binding.interval_ms}ms",
        "__from": str(binding.start_ms),
        "__to": str(last_ms),
        RESOLUTION: RESOLUTION_PATTERNS[binding.resolution],
    }
    selected = binding.variables or {}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name in builtins:
            return builtins[name]
        if name in VARIABLE_TAGS:
            return _regex_value(selected.get(name, ALL))
        if name.startswith("tag_") or name == "col":
            return match.group(0)
        raise UnboundVariableError(
            f"${name} is neither Grafana's own variable nor a board variable ({', '.join(sorted(VARIABLE_TAGS))}) "
            f"in {influxql!r}: name one of those, or add the variable to the boards (dashboards/panels.py)"
        )

    return _VARIABLE.sub(substitute, influxql)


def variables_used(influxql: str) -> set[str]:
    """Dashboard variables a statement refers to (Grafana's builtins and alias patterns left out)."""
    names = {m.group(1) or m.group(3) for m in _VARIABLE.finditer(influxql)}
    return {n for n in names if n not in BUILTIN_VARIABLES and not n.startswith("tag_") and n != "col"}


# --- what settling reads (dashboards/settle.py) ------------------------------------------------------------


def workshop_windows(kind: Literal["state", "downtime"]) -> Query:
    """Every 1m workshop roll-up point in the range, per series (site, workshop, machine type, and reason for
    downtime): what the boards' planned-time and classified-downtime figures are settled from."""
    fields = ", ".join(_n(f) for f in KIND_FIELDS[kind])
    tags = (Tag.SITE, Tag.WORKSHOP, Tag.MACHINE_TYPE, *((Tag.REASON,) if kind == "downtime" else ()))
    measurement = Measurement.ROLLUP_STATE_TIME if kind == "state" else Measurement.ROLLUP_DOWNTIME
    return Query(
        f"workshop_{kind}_windows",
        f"SELECT {fields} FROM {_n(measurement)} WHERE $timeFilter AND {matches(WORKSHOP_VARIABLES)} "
        f"AND {_n(Tag.RESOLUTION)} = '{MINUTE}' GROUP BY {_group_by(*tags)}",
        "table",
    )


def logged_reasons() -> Query:
    """The reason codes operators chose in the range (the log keeps every choice, a corrected one too)."""
    return Query(
        "logged_reasons",
        f'SELECT distinct({_n(Field.REASON)}) AS "reason" FROM {_n(Measurement.STOP_REASON_LOG)} '
        f"WHERE $timeFilter AND {matches(WORKSHOP_VARIABLES)}",
        "table",
    )


# --- styles and orders (ftel/plant/orders.py, docs/orders.md) ---------------------------------------------

# How far back a machine's job changes are read: an order runs for days or weeks, rarely past this.
JOB_LOOKBACK = "400d"
JOB_FIELDS = (
    Field.STYLE,
    Field.ORDER,
    Field.UNITS_BEFORE,
    Field.DEFECTS_BEFORE,
    Field.RUN_MS_BEFORE,
    Field.SOURCE,
    Field.SET_BY,
    Field.PROGRAM,
)


def job_changes(variables: Sequence[str] = MACHINE_VARIABLES) -> Query:
    """Every job change of the selected machines at or before the range end (looked back ``JOB_LOOKBACK``)."""
    fields = ", ".join(_n(f) for f in JOB_FIELDS)
    return Query(
        "job_changes",
        f"SELECT {fields} FROM {_n(Measurement.MACHINE_JOB)} WHERE {looking_back(JOB_LOOKBACK)} "
        f"AND {matches(variables)} GROUP BY {_group_by(Tag.WORKSHOP, Tag.MACHINE_TYPE, Tag.MACHINE_ID)}",
        "table",
    )


def current_jobs(variables: Sequence[str] = MACHINE_VARIABLES) -> Query:
    """Each machine's job at the range end, stamped when it began: what the operator page keeps of a job when
    it changes only the order or only the style."""
    return Query(
        "current_jobs",
        f"SELECT last({_n(Field.STYLE)}) AS {_n(Field.STYLE)}, {_n(Field.ORDER)}, {_n(Field.SOURCE)}, "
        f"{_n(Field.SET_BY)} FROM {_n(Measurement.MACHINE_JOB)} WHERE {looking_back(JOB_LOOKBACK)} "
        f"AND {matches(variables)} GROUP BY {_group_by(Tag.WORKSHOP, Tag.MACHINE_ID)}",
        "table",
    )


def machine_counts(hourly: bool, variables: Sequence[str] = MACHINE_VARIABLES) -> Query:
    """Each machine's windows in the range (or, ``hourly``, its machine hours): units, defects, RUNNING time;
    what the windows are split at job changes from (ftel/plant/orders.py)."""
    measurement = Measurement.MACHINE_HOURS if hourly else Measurement.STATE_TIME
    resolution_condition = f" AND {_n(Tag.RESOLUTION)} = '{HOUR}'" if hourly else ""
    running = state_field(MachineState.RUNNING)
    return Query(
        "machine_hours_made" if hourly else "machine_windows_made",
        f"SELECT {_n(Field.WINDOW_MS)}, {_n(Field.UNITS)}, {_n(Field.DEFECTS)}, {_n(running)} "
        f"FROM {_n(measurement)} WHERE $timeFilter AND {matches(variables)}{resolution_condition} "
        f"GROUP BY {_n(Tag.MACHINE_ID)}",
        "table",
    )


def _job_time(select: str, *by: str) -> str:
    return (
        f"SELECT {select} FROM {_n(Measurement.JOB_TIME)} WHERE $timeFilter AND {matches(MACHINE_VARIABLES)}"
        f"{_grouped(*by)}"
    )


def style_performance() -> Query:
    """Per style over the range: pieces, defects, running hours, seconds per piece and performance (standard
    time of the pieces made / their running time), from the windows split at job changes."""
    run, units = f"sum({_n(Field.RUN_MS)})", f"sum({_n(Field.UNITS)})"
    return Query(
        "style_performance",
        _job_time(
            f'{units} AS "pieces", {_sum(Field.DEFECTS)}, {run} / {MS_PER_HOUR} AS "running_hours", '
            f'{run} / 1000 / {units} AS "s_per_piece", sum({_n(Field.STANDARD_MS)}) / {run} AS "performance"',
            Tag.STYLE,
        ),
        "table",
    )


def order_pieces() -> Query:
    """Per order over the range: pieces, defects, good pieces and how many machines worked on it."""
    per_machine = _job_time(f"{_sum(Field.UNITS)}, {_sum(Field.DEFECTS)}", Tag.ORDER, Tag.MACHINE_ID)
    units, defects = _n(Field.UNITS), _n(Field.DEFECTS)
    return Query(
        "order_pieces",
        f'SELECT sum({units}) AS "pieces", sum({defects}) AS "defects", sum({units}) - sum({defects}) AS "good", '
        f'count({units}) AS "machines" FROM ({per_machine}) GROUP BY {_n(Tag.ORDER)}',
        "table",
    )


def order_progress() -> Query:
    """Each order's last status at or before the range end: good pieces to date, target, progress, estimated
    finish (epoch ms; 0 when not known) and machines, as last settled (dashboards/orders_rollup.py)."""
    fields = ", ".join(_n(f) for f in (Field.TARGET, Field.PROGRESS, Field.ESTIMATED_FINISH_MS, Field.MACHINES))
    return Query(
        "order_progress",
        f"SELECT last({_n(Field.GOOD_TO_DATE)}) AS {_n(Field.GOOD_TO_DATE)}, {fields} "
        f"FROM {_n(Measurement.ORDER_STATUS)} WHERE {looking_back(JOB_LOOKBACK)} AND {matches((SITE,))} "
        f"GROUP BY {_n(Tag.ORDER)}, {_n(Tag.STYLE)}",
        "table",
    )
