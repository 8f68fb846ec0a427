"""Every InfluxQL statement a board or the shift report runs, defined once (pure; no I/O).

Statements are written with Grafana's variables, exactly as a panel sends them:

- ``$timeFilter`` (the dashboard range), ``$__interval`` (the panel's bucket), ``${__to}`` (the range end
  in epoch ms, for "now" questions that must look back before the range start);
- ``$site``, ``$workshop``, ``$machine_type``, ``$machine``: dashboard variables, always used as
  ``"tag" =~ /^$var$/`` so that one value, several values (Grafana renders ``(a|b)``) and All (``.*``)
  all work.

``bind`` puts concrete values in their place the way Grafana does; the shift report and the tests use it, so
the report, the tests and the boards run the same text. Definitions follow docs/schema.md: utilisation =
running / (observed - offline); availability = running / (observed - offline - setup - maintenance);
performance = units / rated units for the running time; quality = good / total units.

The current state of a machine is the last ``machine_state`` point at or before the range end, looked back
``STATE_LOOKBACK`` (the retention policy must be the database's default, as ``ftel stack`` creates it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ftel.contract.states import STATE_ORDER, MachineState, MachineType

# How far back "now" questions look for the last state change, telemetry sample or machine description.
STATE_LOOKBACK = "7d"
TELEMETRY_LOOKBACK = "1h"
META_LOOKBACK = "30d"
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
    SITE: "site",
    WORKSHOP: "workshop",
    MACHINE_TYPE: "machine_type",
    MACHINE: "machine_id",
}
MACHINE_VARIABLES = (SITE, WORKSHOP, MACHINE_TYPE, MACHINE)
GATEWAY_VARIABLES = (SITE, WORKSHOP)
# Grafana's own variables: bound from the time range and the panel width, never defined on a board.
BUILTIN_VARIABLES = frozenset({"timeFilter", "__interval", "__to", "__from"})


def matches(variables: Sequence[str]) -> str:
    """``"site" =~ /^$site$/ AND …`` for the given dashboard variables."""
    return " AND ".join(f'"{VARIABLE_TAGS[v]}" =~ /^${v}$/' for v in variables)


MACHINES = matches(MACHINE_VARIABLES)
GATEWAYS = matches(GATEWAY_VARIABLES)


def looking_back(duration: str) -> str:
    """Points at or before the range end, no further back than ``duration``."""
    return f"time <= ${{__to}}ms AND time > ${{__to}}ms - {duration}"


def _group_by(*tags: str) -> str:
    return ", ".join(f'"{t}"' for t in tags)


# --- variables --------------------------------------------------------------------------------------------


def variable_values(variable: str) -> Query:
    """Values of one dashboard variable, narrowed by the variables before it."""
    index = MACHINE_VARIABLES.index(variable)
    where = matches(MACHINE_VARIABLES[:index])
    where_clause = f" WHERE {where}" if where else ""
    return Query(
        f"variable_{variable}",
        f'SHOW TAG VALUES FROM "state_time" WITH KEY = "{VARIABLE_TAGS[variable]}"{where_clause}',
        "table",
    )


# --- utilisation, availability, OEE -----------------------------------------------------------------------

UTILISATION = 'sum("running_ms") / (sum("observed_ms") - sum("offline_ms"))'
# Planned production time: what is left when unobserved time and planned stops are taken out.
PLANNED_TIME = 'sum("observed_ms") - sum("offline_ms") - sum("setup_ms") - sum("maintenance_ms")'


def utilisation(*by: str) -> Query:
    """Utilisation over the range, one row per combination of the ``by`` tags."""
    group = f" GROUP BY {_group_by(*by)}" if by else ""
    return Query(
        "utilisation" + "".join(f"_by_{t}" for t in by),
        f'SELECT {UTILISATION} AS "utilisation" FROM "state_time" WHERE $timeFilter AND {MACHINES}{group}',
        alias=" ".join(f"$tag_{t}" for t in by) or "utilisation",
    )


def utilisation_trend(by: str) -> Query:
    return Query(
        f"utilisation_trend_by_{by}",
        f'SELECT {UTILISATION} AS "utilisation" FROM "state_time" WHERE $timeFilter AND {MACHINES} '
        f'GROUP BY time($__interval), "{by}" fill(none)',
        alias=f"$tag_{by}",
    )


def oee(machine_type: MachineType) -> Query:
    """Availability, performance, quality and OEE of one machine type (units differ between types, so OEE
    is not summed across them). OEE = A * P * Q = good units / rated units for the planned production time."""
    rate = RATED_UNITS_PER_HOUR[machine_type]
    return Query(
        f"oee_{machine_type.value}",
        f'SELECT sum("running_ms") / ({PLANNED_TIME}) AS "availability", '
        f'sum("units") / (sum("running_ms") * {rate:g} / {MS_PER_HOUR}) AS "performance", '
        f'(sum("units") - sum("defects")) / sum("units") AS "quality", '
        f'(sum("units") - sum("defects")) / (({PLANNED_TIME}) * {rate:g} / {MS_PER_HOUR}) AS "oee" '
        f'FROM "state_time" WHERE $timeFilter AND {MACHINES} AND "machine_type" = \'{machine_type.value}\'',
        "table",
    )


def state_totals(*by: str) -> Query:
    """Milliseconds in each state, units and defects over the range, per ``by`` tags."""
    fields = ", ".join(f'sum("{s.value.lower()}_ms") AS "{s.value.lower()}_ms"' for s in STATE_ORDER)
    group = f" GROUP BY {_group_by(*by)}" if by else ""
    return Query(
        "state_totals" + "".join(f"_by_{t}" for t in by),
        f'SELECT {fields}, sum("observed_ms") AS "observed_ms", sum("units") AS "units", '
        f'sum("defects") AS "defects" FROM "state_time" WHERE $timeFilter AND {MACHINES}{group}',
        "table",
    )


# --- states now and over time -----------------------------------------------------------------------------


def _last_state(extra: str, *by: str) -> str:
    """Each machine's last state change at or before the range end (``state_code`` in STATE_ORDER order);
    ``last`` is the only selector, so the row keeps the time the state began and the extra fields of that
    same point."""
    return (
        f'SELECT last("state_code") AS "state_code"{extra} FROM "machine_state" '
        f"WHERE {looking_back(STATE_LOOKBACK)} AND {MACHINES} GROUP BY {_group_by(*by)}"
    )


CURRENT_STATES_SELECT = _last_state(', "reason"', "workshop", "machine_type", "machine_id")


def current_states() -> Query:
    """Each machine's state at the range end with its reason, stamped when it began."""
    return Query("current_states", CURRENT_STATES_SELECT, "table")


def current_state_codes() -> Query:
    """Each machine's state code at the range end as one series per machine: a grid of tiles."""
    return Query("current_state_codes", _last_state("", "machine_id"), alias="$tag_machine_id")


def machines_in_state(state: MachineState) -> Query:
    """How many machines of each workshop are in ``state`` at the range end."""
    code = STATE_ORDER.index(state)
    return Query(
        f"machines_{state.value.lower()}",
        f'SELECT count("state_code") AS "machines" FROM ({CURRENT_STATES_SELECT}) '
        f'WHERE "state_code" = {code} GROUP BY "workshop"',
        alias=f"$tag_workshop {state.value}",
    )


def down_now() -> Query:
    """Machines DOWN at the range end, with the reason; the time is when the stop began."""
    code = STATE_ORDER.index(MachineState.DOWN)
    return Query(
        "down_now",
        f'SELECT "state_code", "reason" FROM ({CURRENT_STATES_SELECT}) WHERE "state_code" = {code} '
        f"GROUP BY {_group_by('workshop', 'machine_id')}",
        "table",
    )


def state_changes() -> Query:
    """Every state change in the range, per machine: what a state timeline draws."""
    return Query(
        "state_changes",
        f'SELECT "state" FROM "machine_state" WHERE $timeFilter AND {MACHINES} GROUP BY "machine_id"',
        alias="$tag_machine_id",
    )


# --- downtime ---------------------------------------------------------------------------------------------


def downtime_by_reason() -> Query:
    return Query(
        "downtime_by_reason",
        f'SELECT sum("down_ms") / {MS_PER_MINUTE} AS "minutes", sum("stops") AS "stops" FROM "downtime" '
        f'WHERE $timeFilter AND {MACHINES} GROUP BY "reason"',
        "table",
    )


def worst_machines(count: int = WORST_MACHINES) -> Query:
    """The ``count`` machines with the most DOWN time in the range (milliseconds)."""
    return Query(
        "worst_machines",
        f'SELECT top("down_ms", "machine_id", "workshop", {count}) AS "down_ms" FROM '
        f'(SELECT sum("down_ms") AS "down_ms" FROM "state_time" WHERE $timeFilter AND {MACHINES} '
        f"GROUP BY {_group_by('workshop', 'machine_id')})",
        "table",
    )


def stops() -> Query:
    """Every finished stop in the range: reason and duration, stamped when the machine left DOWN."""
    return Query(
        "stops",
        f'SELECT "prev_reason" AS "reason", "prev_duration_ms" AS "duration_ms" FROM "machine_state" '
        f'WHERE $timeFilter AND {MACHINES} AND "prev_state" = \'DOWN\' GROUP BY "machine_id"',
        "table",
    )


def mttr() -> Query:
    return Query(
        "mttr",
        f'SELECT sum("down_ms") / sum("stops") AS "mttr_ms" FROM "downtime" WHERE $timeFilter AND {MACHINES}',
    )


def running_time() -> Query:
    return Query(
        "running_time",
        f'SELECT sum("running_ms") AS "running_ms" FROM "state_time" WHERE $timeFilter AND {MACHINES}',
    )


def stop_count() -> Query:
    return Query("stop_count", f'SELECT sum("stops") AS "stops" FROM "downtime" WHERE $timeFilter AND {MACHINES}')


def repeated_faults(min_stops: int = REPEATED_FAULT_STOPS) -> Query:
    return Query(
        "repeated_faults",
        f'SELECT "stops" FROM (SELECT sum("stops") AS "stops" FROM "downtime" '
        f"WHERE $timeFilter AND {MACHINES} "
        f'GROUP BY {_group_by("workshop", "machine_id", "reason")}) WHERE "stops" >= {min_stops} '
        f"GROUP BY {_group_by('workshop', 'machine_id', 'reason')}",
        "table",
    )


# --- machine detail ---------------------------------------------------------------------------------------


def speed() -> Query:
    return Query(
        "speed",
        f'SELECT mean("speed") AS "speed" FROM "telemetry" WHERE $timeFilter AND {MACHINES} '
        f'GROUP BY time($__interval), "machine_id" fill(none)',
        alias="$tag_machine_id speed",
    )


def machine_info(field: str) -> Query:
    """A nameplate figure (``rated_speed``, ``service_interval_h``) per machine, written at gateway start."""
    return Query(
        f"machine_info_{field}",
        f'SELECT last("{field}") AS "{field}" FROM "machine_info" WHERE {looking_back(META_LOOKBACK)} '
        f'AND {MACHINES} GROUP BY "machine_id"',
        "table",
    )


def counters() -> Query:
    return Query(
        "counters",
        f'SELECT last("units_total") AS "units", last("defects_total") AS "defects" FROM "telemetry" '
        f'WHERE $timeFilter AND {MACHINES} GROUP BY time($__interval), "machine_id" fill(none)',
        alias="$tag_machine_id $col",
    )


def run_hours_since_service() -> Query:
    return Query(
        "run_hours_since_service",
        f'SELECT last("run_ms_since_service") / {MS_PER_HOUR} AS "run_hours" FROM "telemetry" '
        f"WHERE {looking_back(TELEMETRY_LOOKBACK)} AND {MACHINES} "
        f"GROUP BY {_group_by('workshop', 'machine_id')}",
        "table",
    )


def open_alerts() -> Query:
    """Alerts whose last lifecycle change left them firing or acknowledged (status_code 0 or 1)."""
    return Query(
        "open_alerts",
        f'SELECT "status", "summary", "value" FROM (SELECT last("status_code") AS "status_code", "status", '
        f'"summary", "value" FROM "alerts" WHERE {looking_back(STATE_LOOKBACK)} AND {GATEWAYS} '
        f'GROUP BY {_group_by("workshop", "rule", "severity", "subject")}) WHERE "status_code" < 2 '
        f"GROUP BY {_group_by('workshop', 'rule', 'severity', 'subject')}",
        "table",
    )


# --- pipeline health --------------------------------------------------------------------------------------


def ingest_rate(counter: str) -> Query:
    """Per-second rate of one cumulative ingest counter, per worker (a restart never counts negative)."""
    return Query(
        f"ingest_rate_{counter}",
        f'SELECT non_negative_derivative(last("{counter}"), 1s) AS "{counter}_per_s" FROM "ingest_health" '
        f'WHERE $timeFilter GROUP BY time($__interval), "worker" fill(none)',
        alias=f"$tag_worker {counter}/s",
    )


def ingest_increase(counter: str) -> Query:
    """How much one cumulative ingest counter grew in each bucket, per worker."""
    return Query(
        f"ingest_increase_{counter}",
        f'SELECT non_negative_difference(last("{counter}")) AS "{counter}" FROM "ingest_health" '
        f'WHERE $timeFilter GROUP BY time($__interval), "worker" fill(none)',
        alias=f"$tag_worker {counter}",
    )


def ingest_gauge(field: str, aggregate: Literal["max", "mean"] = "max") -> Query:
    return Query(
        f"ingest_{aggregate}_{field}",
        f'SELECT {aggregate}("{field}") AS "{field}" FROM "ingest_health" WHERE $timeFilter '
        f'GROUP BY time($__interval), "worker" fill(none)',
        alias=f"$tag_worker {aggregate} {field}",
    )


def dead_letters() -> Query:
    return Query(
        "dead_letters",
        'SELECT "topic", "reason", "size" FROM "dead_letter" WHERE $timeFilter GROUP BY "worker"',
        "table",
    )


GATEWAY_STATUS_SELECT = (
    f'SELECT last("online") AS "online" FROM "gateway_status" WHERE {looking_back(GATEWAY_LOOKBACK)} '
    f"AND {GATEWAYS} GROUP BY {_group_by('workshop', 'gateway_id')}"
)


def gateway_status() -> Query:
    return Query("gateway_status", GATEWAY_STATUS_SELECT, "table")


def gateways_online() -> Query:
    return Query(
        "gateways_online",
        f'SELECT count("online") AS "gateways" FROM ({GATEWAY_STATUS_SELECT}) WHERE "online" = true',
    )


def spool_depth() -> Query:
    return Query(
        "spool_depth",
        f'SELECT max("spool_depth") AS "spool_depth" FROM "gateway_heartbeat" '
        f"WHERE $timeFilter AND {GATEWAYS} "
        f'GROUP BY time($__interval), "gateway_id" fill(none)',
        alias="$tag_gateway_id spool",
    )


# --- binding ----------------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
ALL: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Binding:
    """Concrete values for a statement: the half-open range [start_ms, end_ms), the bucket for
    ``$__interval`` and each dashboard variable's selected values (``ALL``, the empty tuple, selects all)."""

    start_ms: int
    end_ms: int
    interval_ms: int = 60_000
    variables: Mapping[str, Sequence[str]] | None = None

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise ValueError(f"empty time range: {self.start_ms} .. {self.end_ms}")
        if self.interval_ms <= 0:
            raise ValueError("interval_ms must be positive")


class UnboundVariableError(KeyError):
    """A statement uses a variable the binding does not know."""


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
    }
    selected = binding.variables or {}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in builtins:
            return builtins[name]
        if name in VARIABLE_TAGS:
            return _regex_value(selected.get(name, ALL))
        if name.startswith("tag_") or name == "col":
            return match.group(0)
        raise UnboundVariableError(f"${name} in {influxql!r}")

    return _VARIABLE.sub(substitute, influxql)


def variables_used(influxql: str) -> set[str]:
    """Dashboard variables a statement refers to (Grafana's builtins and alias patterns left out)."""
    names = {m.group(1) or m.group(2) for m in _VARIABLE.finditer(influxql)}
    return {n for n in names if n not in BUILTIN_VARIABLES and not n.startswith("tag_") and n != "col"}
