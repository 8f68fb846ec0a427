"""Boards as code: every board passes the structural checks, output is stable, the checks catch faults."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from dashboards import queries as q
from dashboards.build import DataSourceTarget, all_dashboards, build_tree, datasource
from dashboards.check import KNOWN_PANEL_TYPES, check_dashboard, panels_of
from dashboards.errors import BoardError, PeriodError
from dashboards.page import render
from dashboards.publish import Credentials, _datasource_matches
from dashboards.report_data import ReportData
from dashboards.shifts import between, last_shift, parse_shift, shift
from ftel.contract.states import STATE_COLOURS, STATE_ORDER
from ftel.errors import FtelError
from ftel.plant.calendar import default_calendar
from ftel.settings import InfluxSettings, Settings

EXPECTED_UIDS = {"ftel-overview", "ftel-floor", "ftel-machine", "ftel-maintenance", "ftel-pipeline", "ftel-orders"}
# Without a calendar file, plant time is the default calendar's zone.
PLANT_TIME = default_calendar().time_label


@pytest.fixture(scope="module")
def boards() -> list[dict[str, Any]]:
    return all_dashboards()


def test_every_board_has_its_fixed_uid_and_passes_the_checks(boards: list[dict[str, Any]]) -> None:
    assert {b["uid"] for b in boards} == EXPECTED_UIDS
    assert all(check_dashboard(b) == [] for b in boards)


def test_boards_use_state_timeline_and_only_core_panels(boards: list[dict[str, Any]]) -> None:
    types = {p["type"] for b in boards for p in panels_of(b)}
    assert types <= KNOWN_PANEL_TYPES
    assert "state-timeline" in types


def test_state_colours_are_the_contract_colours_everywhere(boards: list[dict[str, Any]]) -> None:
    colours = {
        r["color"]
        for b in boards
        for p in panels_of(b)
        for m in p.get("fieldConfig", {}).get("defaults", {}).get("mappings", [])
        for r in m["options"].values()
    }
    assert colours == set(STATE_COLOURS.values())


def _variables(boards: list[dict[str, Any]], uid: str) -> dict[str, dict[str, Any]]:
    board = next(b for b in boards if b["uid"] == uid)
    return {v["name"]: v for v in board["templating"]["list"]}


def test_boards_reading_rollups_offer_both_resolutions_and_open_on_one_minute(boards: list[dict[str, Any]]) -> None:
    for uid in ("ftel-overview", "ftel-maintenance"):
        resolution = _variables(boards, uid)[q.RESOLUTION]
        assert resolution["type"] == "custom"
        assert [(o["text"], o["value"]) for o in resolution["options"]] == list(q.RESOLUTION_PATTERNS.items())
        assert resolution["current"]["text"] == q.DEFAULT_RESOLUTION == q.MINUTE
    # The overview's figures come from workshop roll-ups: it is not narrowed by machine.
    assert q.MACHINE not in _variables(boards, "ftel-overview")


def test_machine_detail_opens_on_one_machine_floor_and_maintenance_on_one_workshop(
    boards: list[dict[str, Any]],
) -> None:
    machine = _variables(boards, "ftel-machine")[q.MACHINE]
    assert not machine["multi"]
    assert not machine["includeAll"]
    assert "current" not in machine  # Grafana selects the first machine of the list
    workshop = _variables(boards, "ftel-floor")[q.WORKSHOP]
    assert not workshop["multi"]
    assert not workshop["includeAll"]
    # Maintenance takes a few workshops, never All: it opens on the first.
    crews = _variables(boards, "ftel-maintenance")[q.WORKSHOP]
    assert crews["multi"]
    assert not crews["includeAll"]


def _broken(board: dict[str, Any], change: str) -> dict[str, Any]:
    copy_ = copy.deepcopy(board)
    panels = [p for p in copy_["panels"] if p["type"] != "row"]
    if change == "overlap":
        panels[1]["gridPos"] = dict(panels[0]["gridPos"])
    elif change == "type":
        panels[0]["type"] = "graph-of-dreams"
    elif change == "variable":
        panels[0]["targets"][0]["query"] += " AND $shift_name"
    elif change == "ids":
        panels[1]["id"] = panels[0]["id"]
    elif change == "datasource":
        panels[0]["targets"][0]["datasource"] = {"type": "influxdb", "uid": "someone-elses"}
    elif change == "custom":
        resolution = next(v for v in copy_["templating"]["list"] if v["name"] == q.RESOLUTION)
        resolution["current"] = {"text": "5m", "value": "5m"}
    return copy_


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("overlap", "overlaps"),
        ("type", "not a Grafana core panel"),
        ("variable", "not defined"),
        ("ids", "not unique"),
        ("datasource", "not the provisioned"),
        ("custom", "is not one of its options"),
    ],
)
def test_the_checks_catch_a_broken_board(boards: list[dict[str, Any]], change: str, words: str) -> None:
    problems = check_dashboard(_broken(boards[0], change))
    assert any(words in p for p in problems), problems


def test_build_writes_the_provisioning_tree_stably(tmp_path: Path) -> None:
    settings = Settings(
        influx=InfluxSettings(
            url="http://influx:8086", database="plant", username="grafana", password=SecretStr("s3cret")
        )
    )
    first = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in build_tree(tmp_path / "a", settings)}
    second = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in build_tree(tmp_path / "b", settings)}
    assert first == second
    assert {str(p) for p in first} >= {
        "provisioning/datasources/ftel.yaml",
        "provisioning/dashboards/ftel.yaml",
        *(f"dashboards/{uid}.json" for uid in EXPECTED_UIDS),
    }
    source = yaml.safe_load(first[Path("provisioning/datasources/ftel.yaml")])["datasources"][0]
    assert (source["uid"], source["type"], source["url"], source["jsonData"]["dbName"], source["user"]) == (
        "ftel-influxdb",
        "influxdb",
        "http://influx:8086",
        "plant",
        "grafana",
    )
    assert source["secureJsonData"]["password"] == "$__env{FTEL_INFLUX__PASSWORD}"
    assert not any(b"s3cret" in content for content in first.values())
    provider = yaml.safe_load(first[Path("provisioning/dashboards/ftel.yaml")])["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    board = first[Path("dashboards/ftel-overview.json")].decode()
    assert board == json.dumps(json.loads(board), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_shifts_hand_over_at_eight_sixteen_and_midnight_plant_time() -> None:
    early = shift(date(2026, 3, 1), "early")
    assert datetime.fromtimestamp(early.start_ms / 1000, UTC) == datetime(2026, 3, 1, 0, tzinfo=UTC)
    assert early.end_ms - early.start_ms == 8 * 3600 * 1000
    assert parse_shift("2026-03-01/early") == early
    # 09:30 UTC is 17:30 plant time: the early shift (08-16) is the last one finished.
    assert last_shift(datetime(2026, 3, 1, 9, 30, tzinfo=UTC)) == early


def test_periods_are_labelled_in_plant_time_whatever_zone_they_were_given_in() -> None:
    in_utc = between("2026-03-01T00:00Z", "2026-03-01T08:00+00:00")
    in_plant_time = between("2026-03-01T08:00", "2026-03-01T16:00")
    assert (in_utc.start_ms, in_utc.end_ms) == (in_plant_time.start_ms, in_plant_time.end_ms)
    assert in_utc.label == in_plant_time.label == f"2026-03-01 08:00 to 2026-03-01 16:00 {PLANT_TIME}"
    assert in_plant_time.zone_assumed
    assert not in_utc.zone_assumed
    assert shift(date(2026, 3, 1), "early").label.endswith(PLANT_TIME)


def test_the_report_speaks_plant_time_throughout() -> None:
    period = between("2026-03-01T00:00Z", "2026-03-01T08:00Z")
    data = ReportData(
        start_ms=period.start_ms,
        end_ms=period.end_ms,
        utilisation=0.5,
        utilisation_by_workshop={"knit": 0.5},
        utilisation_by_type={"knitting": 0.5},
        downtime=[],
        worst=[],
        oee={},
        machines_by_state={"knit": dict.fromkeys(STATE_ORDER, 1)},
    )
    page = render(data, title="Shift report", period=period.label, generated_ms=period.end_ms)
    assert f"<p>2026-03-01 08:00 to 2026-03-01 16:00 {PLANT_TIME}</p>" in page
    assert f"Machines by state at 2026-03-01 16:00 {PLANT_TIME}" in page
    assert f"Generated 2026-03-01 16:00 {PLANT_TIME}" in page
    assert "00:00" not in page


def test_a_period_that_cannot_be_read_says_what_is_expected() -> None:
    with pytest.raises(PeriodError, match="DATE/SHIFT"):
        parse_shift("tuesday")
    with pytest.raises(PeriodError, match="ISO"):
        between("yesterday", "today")
    with pytest.raises(PeriodError, match="ends before"):
        between("2026-03-01T16:00", "2026-03-01T08:00")


def test_a_data_source_as_grafana_returns_it_counts_as_unchanged() -> None:
    settings = Settings(influx=InfluxSettings(username="grafana", password=SecretStr("s3cret")))
    wanted = datasource(settings, DataSourceTarget("http://influx:8086"), secrets="inline")
    assert wanted["secureJsonData"] == {"password": "s3cret"}
    # Grafana's answer to GET /api/datasources/uid/…: no secrets, readOnly instead of editable, its own keys.
    stored = {k: v for k, v in wanted.items() if k not in {"secureJsonData", "editable"}}
    stored |= {
        "id": 7,
        "orgId": 1,
        "readOnly": False,
        "version": 3,
        "secureJsonFields": {"password": True},
        "jsonData": {**wanted["jsonData"], "keepCookies": []},
    }
    assert _datasource_matches(wanted, stored)
    assert not _datasource_matches(wanted, {**stored, "url": "http://elsewhere:8086"})
    assert not _datasource_matches(wanted, {**stored, "secureJsonFields": {}})


def test_boards_show_times_in_the_plant_calendars_zone_not_the_browsers(tmp_path: Path) -> None:
    assert {b["timezone"] for b in all_dashboards()} == {default_calendar().time_zone}
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text("time_zone: Europe/Berlin\nshifts: [{name: day, start: '06:00', end: '18:00'}]\n")
    written = build_tree(tmp_path / "tree", Settings(calendar=calendar))
    boards = [json.loads(p.read_text()) for p in written if p.parent.name == "dashboards" and p.suffix == ".json"]
    assert len(boards) == len(EXPECTED_UIDS)
    assert {b["timezone"] for b in boards} == {"Europe/Berlin"}


def test_the_dashboards_errors_are_the_projects_and_say_what_to_do() -> None:
    with pytest.raises(FtelError, match="use 'last' or DATE/SHIFT"):
        parse_shift("yesterday")
    with pytest.raises(FtelError, match="the end must come after the start"):
        q.Binding(10, 10)
    with pytest.raises(FtelError, match="give --token, or --user and --password"):
        Credentials().for_client()
    assert issubclass(BoardError, FtelError)
