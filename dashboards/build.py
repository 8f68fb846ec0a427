"""``ftel dashboards build``: the Grafana provisioning tree, written from code.

Layout of ``<out>`` (docker-compose.yml mounts it into Grafana)::

    <out>/provisioning/datasources/ftel.yaml   the InfluxDB (InfluxQL) data source, uid ``ftel-influxdb``
    <out>/provisioning/dashboards/ftel.yaml    a file provider reading /var/lib/grafana/dashboards
    <out>/provisioning/alerting/…              alert rules (written by the alerts package)
    <out>/dashboards/<uid>.json                one file per board, sorted keys, stable across builds

Mount ``<out>/provisioning`` at /etc/grafana/provisioning and ``<out>/dashboards`` at
/var/lib/grafana/dashboards.
Secrets never land in the tree: the data source reads the InfluxDB password or token from the Grafana
container's environment (``FTEL_INFLUX__PASSWORD`` / ``FTEL_INFLUX__TOKEN``) through Grafana's ``$__env{…}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from alerts.grafana_rules import write_grafana_rules
from dashboards.board import Board
from dashboards.boards import BOARDS
from dashboards.check import check_dashboard
from dashboards.errors import BoardError
from dashboards.panels import DATASOURCE_TYPE, DATASOURCE_UID
from dashboards.queries import WINDOW_MS
from ftel.plant.calendar import Calendar, default_calendar, site_calendar
from ftel.settings import Settings

DATASOURCE_NAME = "ftel InfluxDB"
FOLDER_TITLE = "Factory telemetry"
FOLDER_UID = "ftel"
PROVIDER_NAME = "ftel"
GRAFANA_DASHBOARDS_DIR = "/var/lib/grafana/dashboards"
DATASOURCES_FILE = Path("provisioning/datasources/ftel.yaml")
PROVIDERS_FILE = Path("provisioning/dashboards/ftel.yaml")
DASHBOARDS_DIR = Path("dashboards")
# Grafana polls the dashboards directory this often for changes (seconds).
PROVIDER_POLL_S = 30
# InfluxDB points are at most one per gateway window per machine for state time: never ask for finer buckets.
MIN_TIME_INTERVAL = f"{WINDOW_MS // 1000}s"

Json = dict[str, Any]
Secrets = Literal["environment", "inline"]


def dashboard_json(board: Board, time_zone: str) -> Json:
    """The board as Grafana's dashboard JSON (plain dicts and lists)."""
    result: Json = json.loads(json.dumps(board.dashboard(time_zone), cls=JSONEncoder))
    return result


def dumps(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def all_dashboards(calendar: Calendar | None = None) -> list[Json]:
    """Every board, checked, in the plant calendar's time zone (the default calendar's without one); raises
    BoardError listing every problem."""
    time_zone = (calendar or default_calendar()).time_zone
    boards = [dashboard_json(make(), time_zone) for make in BOARDS]
    problems = [f"{b['uid']}: {problem}" for b in boards for problem in check_dashboard(b)]
    if problems:
        raise BoardError(
            "boards failed their checks (nothing was written; fix the board's module under dashboards/boards/):\n  "
            + "\n  ".join(problems)
        )
    return boards


@dataclass(frozen=True, slots=True)
class DataSourceTarget:
    """Where Grafana finds InfluxDB: often not where ftel does (inside compose it is http://influxdb:8086)."""

    url: str

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None = None) -> DataSourceTarget:
        return cls(url or settings.influx.url)


def datasource(settings: Settings, target: DataSourceTarget, *, secrets: Secrets) -> Json:
    """Grafana's data source model for InfluxDB over InfluxQL. ``secrets='environment'`` refers to the
    container's environment (for files); ``'inline'`` carries the values (for the HTTP API)."""
    influx = settings.influx
    model: Json = {
        "name": DATASOURCE_NAME,
        "uid": DATASOURCE_UID,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "url": target.url,
        "database": influx.database,
        "isDefault": True,
        "editable": False,
        "jsonData": {
            "dbName": influx.database,
            "httpMode": "POST",
            "version": "InfluxQL",
            "timeInterval": MIN_TIME_INTERVAL,
        },
    }
    secure: Json = {}
    if influx.token is not None:
        token = influx.token.get_secret_value() if secrets == "inline" else "$__env{FTEL_INFLUX__TOKEN}"
        model["jsonData"]["httpHeaderName1"] = "Authorization"
        secure["httpHeaderValue1"] = f"Token {token}"
    elif influx.username:
        model["user"] = influx.username
        model["basicAuth"] = False
        if influx.password is not None:
            secure["password"] = (
                influx.password.get_secret_value() if secrets == "inline" else "$__env{FTEL_INFLUX__PASSWORD}"
            )
    if secure:
        model["secureJsonData"] = secure
    return model


def datasources_file(settings: Settings, target: DataSourceTarget) -> Json:
    return {
        "apiVersion": 1,
        "deleteDatasources": [{"name": DATASOURCE_NAME, "orgId": 1}],
        "datasources": [{**datasource(settings, target, secrets="environment"), "orgId": 1}],
    }


def providers_file() -> Json:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": PROVIDER_NAME,
                "orgId": 1,
                "folder": FOLDER_TITLE,
                "folderUid": FOLDER_UID,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": PROVIDER_POLL_S,
                "options": {"path": GRAFANA_DASHBOARDS_DIR, "foldersFromFilesStructure": False},
            }
        ],
    }


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def build_tree(out: Path, settings: Settings, *, datasource_url: str | None = None) -> list[Path]:
    """Write the provisioning tree under ``out`` (layout in the module docstring); return its files."""
    boards = all_dashboards(site_calendar(settings.calendar))
    target = DataSourceTarget.from_settings(settings, datasource_url)
    written = [
        _write(out / DATASOURCES_FILE, yaml.safe_dump(datasources_file(settings, target), sort_keys=True)),
        _write(out / PROVIDERS_FILE, yaml.safe_dump(providers_file(), sort_keys=True)),
    ]
    written += [_write(out / DASHBOARDS_DIR / f"{b['uid']}.json", dumps(b)) for b in boards]
    written.append(write_grafana_rules(out))  # the alert worker's rules, for teams using Grafana alerting
    return written
