"""Small typed factories for the boards: targets from shared queries, variables, panels in house colours.

Every panel reads the InfluxDB data source with the fixed uid ``ftel-influxdb``; derived figures (MTBF) use
Grafana's server-side expressions. One colour per machine state (``STATE_COLOURS``) is used everywhere.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import barchart, bargauge, dashboard, expr, stat, statetimeline, table
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import timeseries as timeseries_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards.queries import (
    DEFAULT_RESOLUTION,
    MACHINE_VARIABLES,
    MINUTE,
    RESOLUTION,
    RESOLUTION_PATTERNS,
    WORKSHOP_VARIABLES,
    Query,
    variable_values,
)
from ftel.contract.states import STATE_COLOURS, STATE_ORDER
from ftel.storage.schema import GRAFANA_DATASOURCE_UID

DATASOURCE_UID = GRAFANA_DATASOURCE_UID
DATASOURCE_TYPE = "influxdb"
DATASOURCE = model.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
EXPRESSION = model.DataSourceRef(type_val="__expr__", uid="__expr__")
# The gateway accumulates state time in windows (one minute by default): a finer bucket only shows empty slots.
MIN_INTERVAL = MINUTE
VARIABLE_LABELS = {
    "site": "Site",
    "workshop": "Workshop",
    "machine_type": "Machine type",
    "machine": "Machine",
    RESOLUTION: "Resolution",
}
REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class InfluxQLTarget(cogvariants.Dataquery):
    """Grafana's InfluxDB (InfluxQL) query model, raw mode: the SDK has no builder for this data source."""

    def __init__(self, *, ref_id: str, query: Query, hide: bool = False) -> None:
        self.ref_id = ref_id
        self.query = query
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": DATASOURCE.to_json(),
            "query": self.query.influxql,
            "rawQuery": True,
            "resultFormat": self.query.format,
        }
        if self.query.alias:
            payload["alias"] = self.query.alias
        if self.hide:
            payload["hide"] = True
        return payload


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, query: Query, ref_id: str = "A", *, hide: bool = False) -> None:
        self._internal = InfluxQLTarget(ref_id=ref_id, query=query, hide=hide)

    def build(self) -> InfluxQLTarget:
        return self._internal


def targets(*queries: Query) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    """One target per query, refIds A, B, C… in order."""
    return [InfluxQL(q, REF_IDS[i]) for i, q in enumerate(queries)]


def math(ref_id: str, expression: str) -> expr.TypeMath:
    return expr.TypeMath().ref_id(ref_id).expression(expression).datasource(EXPRESSION)


# --- variables --------------------------------------------------------------------------------------------


def query_variable(name: str, *, multi: bool = True, include_all: bool = True) -> dashboard.QueryVariable:
    """A variable filled from InfluxDB tag values; All is ``.*``, so ``=~ /^$name$/`` matches every value.
    Without All (or single-valued) Grafana opens on the first value of the list."""
    variable = (
        dashboard.QueryVariable(name)
        .label(VARIABLE_LABELS[name])
        .datasource(DATASOURCE)
        .query(variable_values(name).influxql)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        variable = variable.multi(True)
    if multi and include_all:
        variable = (
            variable.include_all(True)
            .all_value(".*")
            .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
        )
    return variable


def machine_variables(
    *, single: Collection[str] = (), without_all: Collection[str] = ()
) -> list[cogbuilder.Builder[model.VariableModel]]:
    """Site, workshop, machine type and machine; those in ``single`` take one value, those in ``without_all``
    several but not All (Grafana opens both on the first value)."""
    return [query_variable(n, multi=n not in single, include_all=n not in without_all) for n in MACHINE_VARIABLES]


def workshop_variables() -> list[cogbuilder.Builder[model.VariableModel]]:
    """What workshop roll-ups can be narrowed by (they hold no machine), and the resolution they are read at."""
    return [*(query_variable(n) for n in WORKSHOP_VARIABLES), resolution_variable()]


def site_variables() -> list[cogbuilder.Builder[model.VariableModel]]:
    return [query_variable(n) for n in ("site", "workshop")]


def resolution_variable() -> dashboard.CustomVariable:
    """1m (default): every gateway window that starts in the range, exact to the minute, the running hour
    included; 1h: every hour that starts in the range, read from hourly roll-ups, for long ranges and large
    fleets. The value is what the roll-ups' resolution tag must match (queries.RESOLUTION_PATTERNS)."""
    options = [
        model.VariableOption(selected=r == DEFAULT_RESOLUTION, text=r, value=pattern)
        for r, pattern in RESOLUTION_PATTERNS.items()
    ]
    return (
        dashboard.CustomVariable(RESOLUTION)
        .label(VARIABLE_LABELS[RESOLUTION])
        .description(
            "1m: every one-minute window in the range, exact, the running hour included. "
            "1h: whole hours that start in the range (an hour shows once it has ended); fast for days or a "
            "county's fleet."
        )
        .values(",".join(f"{r} : {pattern}" for r, pattern in RESOLUTION_PATTERNS.items()))
        .options(options)
        .current(next(o for o in options if o.selected))
    )


# --- colours ----------------------------------------------------------------------------------------------


def state_mappings(*, by_code: bool) -> list[model.ValueMapping]:
    """State names (or their codes) shown as the state name in the state's colour."""
    return [
        model.ValueMap(
            options={
                (str(i) if by_code else s.value): model.ValueMappingResult(
                    text=s.value, color=STATE_COLOURS[s], index=i
                )
                for i, s in enumerate(STATE_ORDER)
            }
        )
    ]


def fixed_colour(colour: str) -> list[model.DynamicConfigValue]:
    return [model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": colour})]


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=v, color=c) for v, c in steps])
    )


# Utilisation and OEE factors: red below 60 %, amber below 85 %, green above (world-class OEE is about 85 %).
RATIO_THRESHOLDS = ((None, "#d62f2f"), (0.6, "#e0b400"), (0.85, "#2e9e44"))


def transform(transform_id: str, options: dict[str, Any]) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(id_val=transform_id, options=options)


def sort_by(field: str) -> model.DataTransformerConfig:
    return transform("sortBy", {"sort": [{"field": field, "desc": True}]})


def organise(names: dict[str, str], *, hide: Sequence[str] = ("Time",)) -> model.DataTransformerConfig:
    return transform("organize", {"renameByName": names, "excludeByName": dict.fromkeys(hide, True)})


# --- panels -----------------------------------------------------------------------------------------------


class PanelBuilder(Protocol):
    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def span(self, w: int) -> Self: ...
    def height(self, h: int) -> Self: ...
    def datasource(self, datasource: model.DataSourceRef) -> Self: ...
    def targets(self, targets: list[cogbuilder.Builder[cogvariants.Dataquery]]) -> Self: ...
    def interval(self, interval: str) -> Self: ...
    def build(self) -> model.Panel: ...


P = TypeVar("P", bound=PanelBuilder)


def framed(panel: P, title: str, description: str, queries: Sequence[Query], *, w: int, h: int) -> P:
    """Title, help text, size and the shared queries as targets: what every panel has."""
    return (
        panel.title(title)
        .description(description)
        .span(w)
        .height(h)
        .datasource(DATASOURCE)
        .interval(MIN_INTERVAL)
        .targets(targets(*queries))
    )


def stat_panel(title: str, description: str, *queries: Query, w: int = 6, h: int = 5) -> stat.Panel:
    return (
        framed(stat.Panel(), title, description, queries, w=w, h=h)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.BACKGROUND)
    )


def ratio_stat(title: str, description: str, *queries: Query, w: int = 6, h: int = 5) -> stat.Panel:
    return (
        stat_panel(title, description, *queries, w=w, h=h)
        .unit("percentunit")
        .decimals(1)
        .min(0)
        .max(1)
        .thresholds(thresholds(*RATIO_THRESHOLDS))
    )


def state_grid(title: str, description: str, query: Query, *, w: int = 24, h: int = 8) -> stat.Panel:
    """One tile per machine in the colour of its current state."""
    return (
        framed(stat.Panel(), title, description, [query], w=w, h=h)
        .reduce_options(common_builders.ReduceDataOptions().values(True).fields("/^state_code$/"))
        .mappings(state_mappings(by_code=True))
        .color_mode(common.BigValueColorMode.BACKGROUND_SOLID)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
    )


def state_timeline(title: str, description: str, query: Query, *, w: int = 24, h: int = 12) -> statetimeline.Panel:
    return (
        framed(statetimeline.Panel(), title, description, [query], w=w, h=h)
        .mappings(state_mappings(by_code=False))
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.85)
        .fill_opacity(90)
        .line_width(0)
        .color_scheme(dashboard.FieldColor().mode(model.FieldColorModeId.FIXED).fixed_color("#8e8e8e"))
    )


def timeseries(
    title: str, description: str, *queries: Query, unit: str = "short", w: int = 12, h: int = 8
) -> timeseries_builders.Panel:
    return (
        framed(timeseries_builders.Panel(), title, description, queries, w=w, h=h)
        .unit(unit)
        .line_width(2)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )


def table_panel(
    title: str,
    description: str,
    *queries: Query,
    w: int = 12,
    h: int = 8,
    transformations: Sequence[model.DataTransformerConfig] = (),
) -> table.Panel:
    panel = framed(table.Panel(), title, description, queries, w=w, h=h)
    for transformation in transformations:
        panel = panel.with_transformation(transformation)
    return panel


def bar_chart(
    title: str,
    description: str,
    query: Query,
    *,
    x_field: str,
    unit: str,
    w: int = 12,
    h: int = 9,
    sort_field: str,
) -> barchart.Panel:
    """Bars of a table result, largest first (a Pareto when sorted by the measured value)."""
    return (
        framed(barchart.Panel(), title, description, [query], w=w, h=h)
        .x_field(x_field)
        .unit(unit)
        .orientation(common.VizOrientation.HORIZONTAL)
        .show_value(common.VisibilityMode.AUTO)
        .fill_opacity(85)
        .with_transformation(sort_by(sort_field))
    )


def ratio_bars(title: str, description: str, *queries: Query, w: int = 12, h: int = 8) -> bargauge.Panel:
    return (
        framed(bargauge.Panel(), title, description, queries, w=w, h=h)
        .unit("percentunit")
        .decimals(1)
        .min(0)
        .max(1)
        .thresholds(thresholds(*RATIO_THRESHOLDS))
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def state_colour_overrides(panel: P, pattern: str) -> P:
    """Colour each series whose name ends in a state name (``pattern`` has one ``{state}``) in that state's
    colour."""
    result: Any = panel
    for state in STATE_ORDER:
        result = result.override_by_regexp(pattern.format(state=state.value), fixed_colour(STATE_COLOURS[state]))
    return result  # type: ignore[no-any-return]


def unit_is(unit: str) -> list[model.DynamicConfigValue]:
    """Override properties giving one field its own unit."""
    return [model.DynamicConfigValue(id_val="unit", value=unit)]
