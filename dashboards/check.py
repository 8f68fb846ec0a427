"""Structural checks of a dashboard against Grafana's dashboard model (pure): what Grafana would reject
or silently show broken. ``ftel dashboards build`` refuses to write a broken board; tests run it too."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from dashboards.panels import DATASOURCE_TYPE, DATASOURCE_UID
from dashboards.queries import variables_used

# Grafana 10/11 dashboards; older schema versions are migrated by Grafana on load, newer ones we do not know.
MIN_SCHEMA_VERSION = 36
MAX_SCHEMA_VERSION = 41
GRID_COLUMNS = 24
# Panel plugins that ship with Grafana (core panels).
KNOWN_PANEL_TYPES = frozenset(
    {
        "row",
        "timeseries",
        "stat",
        "gauge",
        "bargauge",
        "barchart",
        "table",
        "state-timeline",
        "status-history",
        "piechart",
        "text",
        "heatmap",
        "histogram",
        "logs",
        "news",
        "nodeGraph",
        "trend",
        "xychart",
        "geomap",
        "canvas",
        "dashlist",
        "alertlist",
        "annolist",
        "candlestick",
        "flamegraph",
        "traces",
        "datagrid",
    }
)
EXPRESSION_UID = "__expr__"
_REF = re.compile(r"\$(\w+)")

Json = Mapping[str, Any]


def panels_of(board: Json) -> Iterator[Json]:
    """Every panel, including those folded inside collapsed rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _overlaps(a: Json, b: Json) -> bool:
    return bool(
        a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
    )


def _datasource_problems(where: str, ref: Any, *, allow_expression: bool) -> list[str]:
    if not isinstance(ref, Mapping):
        return [f"{where}: no data source reference"]
    allowed = {(DATASOURCE_TYPE, DATASOURCE_UID)} | ({(EXPRESSION_UID, EXPRESSION_UID)} if allow_expression else set())
    if (ref.get("type"), ref.get("uid")) not in allowed:
        return [f"{where}: data source {ref.get('type')}/{ref.get('uid')} is not the provisioned {DATASOURCE_UID}"]
    return []


def _target_problems(where: str, panel: Json) -> tuple[list[str], set[str]]:
    problems: list[str] = []
    used: set[str] = set()
    targets = panel.get("targets", [])
    refs = [t.get("refId") for t in targets]
    if len(set(refs)) != len(refs):
        problems.append(f"{where}: repeated refIds {refs}")
    if not targets:
        problems.append(f"{where}: no queries")
    for target in targets:
        at = f"{where} target {target.get('refId')}"
        problems += _datasource_problems(at, target.get("datasource"), allow_expression=True)
        if target.get("datasource", {}).get("uid") == EXPRESSION_UID:
            missing = set(_REF.findall(target.get("expression", ""))) - set(refs)
            if missing:
                problems.append(f"{at}: expression refers to unknown queries {sorted(missing)}")
            continue
        if not target.get("rawQuery") or not target.get("query"):
            problems.append(f"{at}: not a raw InfluxQL query")
        if target.get("resultFormat") not in {"time_series", "table"}:
            problems.append(f"{at}: unknown resultFormat {target.get('resultFormat')!r}")
        used |= variables_used(target.get("query", "")) | variables_used(target.get("alias", ""))
    return problems, used


def _custom_problems(variable: Json) -> list[str]:
    """A custom variable: its options are what its query lists (``text : value`` pairs), one is current."""
    where = f"variable {variable['name']}"
    listed = [item.split(" : ", 1) for item in str(variable.get("query", "")).split(",") if item]
    pairs = [(p[0].strip(), p[-1].strip()) for p in listed]
    options = [(o.get("text"), o.get("value")) for o in variable.get("options", [])]
    problems = [] if pairs and pairs == options else [f"{where}: options {options} are not its values {pairs}"]
    current = variable.get("current", {})
    if (current.get("text"), current.get("value")) not in pairs:
        problems.append(f"{where}: current value {current.get('value')!r} is not one of its options")
    return problems


def check_dashboard(board: Json) -> list[str]:
    """Problems found, as sentences; an empty list means the board is sound."""
    problems: list[str] = []
    version = board.get("schemaVersion")
    if not isinstance(version, int) or not MIN_SCHEMA_VERSION <= version <= MAX_SCHEMA_VERSION:
        problems.append(f"schemaVersion {version!r} is not one Grafana 10/11 loads as is")
    for key in ("uid", "title"):
        if not board.get(key):
            problems.append(f"no {key}")
    variables = board.get("templating", {}).get("list", [])
    defined: list[str] = [v["name"] for v in variables]
    used: set[str] = set()
    for index, variable in enumerate(variables):
        query = variable.get("query", "")
        if variable.get("type") == "custom":
            problems += _custom_problems(variable)
            continue
        problems += _datasource_problems(
            f"variable {variable['name']}", variable.get("datasource"), allow_expression=False
        )
        later = variables_used(query if isinstance(query, str) else "") - set(defined[:index])
        if later:
            problems.append(f"variable {variable['name']} depends on {sorted(later)}, not defined before it")
    ids: list[int] = []
    boxes: list[tuple[str, Json]] = []
    for panel in panels_of(board):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        ids.append(panel.get("id", -1))
        if panel.get("type") not in KNOWN_PANEL_TYPES:
            problems.append(f"{where}: panel type {panel.get('type')!r} is not a Grafana core panel")
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"{where}: incomplete gridPos {grid}")
            continue
        if grid["w"] <= 0 or grid["h"] <= 0 or grid["x"] < 0 or grid["y"] < 0 or grid["x"] + grid["w"] > GRID_COLUMNS:
            problems.append(f"{where}: gridPos {grid} outside the {GRID_COLUMNS}-column grid")
        problems += [f"{where} overlaps {other}" for other, box in boxes if _overlaps(grid, box)]
        boxes.append((where, grid))
        if panel.get("type") == "row":
            continue
        problems += _datasource_problems(where, panel.get("datasource"), allow_expression=False)
        target_problems, target_used = _target_problems(where, panel)
        problems += target_problems
        used |= target_used
    if len(set(ids)) != len(ids):
        problems.append(f"panel ids are not unique: {sorted(i for i in ids if ids.count(i) > 1)}")
    undefined = used - set(defined)
    if undefined:
        problems.append(f"variables used but not defined: {sorted(undefined)}")
    return problems
