"""Machine detail: state timeline, utilisation, speed against rated speed, counters, stops, MTBF and MTTR; one
machine at a time, read from its own raw points."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models import common

from dashboards import panels as p
from dashboards import queries as q
from dashboards.board import Board, Row
from ftel.plant.stops import micro_stop_limits_ms

UID = "ftel-machine"


def speed_panel() -> timeseries.Panel:
    # The rated speed (query B) becomes the panel's threshold line, so every machine type gets its own.
    rated = p.transform(
        "configFromData",
        {
            "configRefId": "B",
            "mappings": [{"fieldName": "rated_speed", "handlerKey": "threshold1"}],
            "applyTo": {"id": "byFrameRefID", "options": "A"},
        },
    )
    return (
        p.timeseries(
            "Speed against rated speed",
            "Mean speed per interval; the dashed line is the rated speed.",
            q.speed(),
            q.machine_info("rated_speed"),
        )
        .with_transformation(rated)
        .thresholds(p.thresholds((None, "#8e8e8e"), (0, "#2e9e44")))
        .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED))
    )


def stops_table() -> table.Panel:
    started = p.transform(
        "calculateField",
        {
            "mode": "binary",
            "alias": "Started",
            "replaceFields": False,
            "binary": {"left": "Time", "operator": "-", "right": "duration_ms"},
        },
    )
    return (
        p.table_panel(
            "Stops",
            "Every stop that ended in the range: reason, start and duration.",
            q.stops(),
            transformations=[
                started,
                p.organise({"reason": "Reason", "duration_ms": "Duration", "machine_id": "Machine"}),
                p.sort_by("Started"),
            ],
        )
        .override_by_name("Duration", p.unit_is("ms"))
        .override_by_name("Started", p.unit_is("dateTimeAsIso"))
    )


def mtbf_panel() -> stat.Panel:
    hidden = [p.InfluxQL(q.running_time(), "A", hide=True), p.InfluxQL(q.stop_count(), "B", hide=True)]
    return (
        p.stat_panel("MTBF", "Mean running time between stops: running time / stops begun in the range.", w=6)
        .targets([*hidden, p.math("C", "$A / $B")])
        .unit("ms")
    )


def board() -> Board:
    return Board(
        uid=UID,
        title="Machine detail",
        description="One machine: states, utilisation, speed, counters, stops, MTBF and MTTR.",
        # One machine, never All: Grafana opens the board on the first machine of the list.
        variables=p.machine_variables(single={q.MACHINE}),
        rows=[
            Row(
                "States",
                [
                    p.state_timeline("State timeline", "State changes over the range.", q.state_changes(), w=18, h=5),
                    p.ratio_stat(
                        "Utilisation",
                        "Running time / observed time without OFFLINE over the range, from the machine's own "
                        "one-minute windows.",
                        q.utilisation(reading=q.ONE_MACHINE),
                    ),
                ],
            ),
            Row(
                "Running",
                [
                    speed_panel(),
                    p.timeseries("Counters", "Units and defects counted by the machine.", q.counters()),
                ],
            ),
            Row(
                "Stops",
                [
                    stops_table(),
                    mtbf_panel(),
                    p.stat_panel(
                        "MTTR", "Mean time to repair: DOWN time / stops begun in the range.", q.mttr(), w=6
                    ).unit("ms"),
                    p.table_panel(
                        "Micro-stops",
                        "Stops shorter than the machine type's threshold that ended in the range (docs/boards.md): "
                        "how many, and how long in all.",
                        q.micro_stops(micro_stop_limits_ms()),
                        w=6,
                        h=5,
                        transformations=[p.organise({"stops": "Micro-stops", "ms": "Time"})],
                    ).override_by_name("Time", p.unit_is("ms")),
                ],
            ),
        ],
    )
