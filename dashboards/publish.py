"""``ftel dashboards publish``: data source, folder, boards (and alert rules, when the tree has them)
pushed to a running Grafana through its HTTP API (grafana-client). Idempotent: what already matches is left
alone, so a second publish changes nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

from dashboards.build import FOLDER_TITLE, FOLDER_UID, DataSourceTarget, all_dashboards, datasource
from dashboards.errors import PublishError
from ftel.plant.calendar import site_calendar
from ftel.settings import Settings

log = logging.getLogger(__name__)

# A Grafana that has not answered in this long is treated as down.
TIMEOUT_S = 10.0
NOT_FOUND = 404
FORBIDDEN = 403
# Keys Grafana adds or manages itself; they never make a stored object differ from ours.
DASHBOARD_VOLATILE = ("id", "version")
ALERT_RULES_DIR = Path("provisioning/alerting")

Action = Literal["created", "updated", "unchanged"]
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Credentials:
    token: str | None = None
    user: str | None = None
    password: str | None = None

    def for_client(self) -> str | tuple[str, str]:
        if self.token:
            return self.token
        if self.user is not None and self.password is not None:
            return (self.user, self.password)
        raise PublishError("give --token, or --user and --password, of a Grafana admin or editor")


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    name: str
    action: Action


def _call(url: str, what: str, call: Callable[[], Any]) -> Any:
    """One API call, with the library's errors turned into what a person can act on."""
    try:
        return call()
    except GrafanaUnauthorizedError as error:
        raise PublishError(
            f"Grafana at {url} refused the credentials (bad credentials: 401) while {what}; "
            "check --token or --user/--password"
        ) from error
    except GrafanaClientError as error:
        if error.status_code == FORBIDDEN:
            raise PublishError(
                f"Grafana at {url} does not allow {what} for these credentials (403); "
                "use an admin or editor account or token"
            ) from error
        raise
    except GrafanaException as error:
        raise PublishError(f"Grafana at {url} failed while {what}: {error}") from error
    except OSError as error:  # the HTTP library's connection errors are OSErrors
        raise PublishError(
            f"Grafana is not reachable at {url} ({type(error).__name__}); is it running, and is --grafana-url right?"
        ) from error


def _existing(url: str, what: str, call: Callable[[], Any]) -> Any | None:
    try:
        return _call(url, what, call)
    except GrafanaClientError as error:
        if error.status_code == NOT_FOUND:
            return None
        raise PublishError(f"Grafana at {url} answered {error.status_code} while {what}: {error}") from error


def _differs(wanted: Json, stored: Json) -> bool:
    """True when a key we set has another value in Grafana (keys only Grafana sets are ignored)."""
    return any(stored.get(k) != v for k, v in wanted.items() if k not in {"secureJsonData", *DASHBOARD_VOLATILE})


# What Grafana returns for a data source as we set it (``editable`` comes back as ``readOnly``: left out).
DATASOURCE_COMPARED = ("name", "type", "url", "access", "database", "user", "basicAuth", "isDefault")


def _datasource_matches(wanted: Json, stored: Json) -> bool:
    """Secrets cannot be read back: a secret counts as matching when Grafana has one set
    (``secureJsonFields``). To rotate a secret, change it in Grafana or delete the data source and publish."""
    if any(stored.get(k) != wanted[k] for k in DATASOURCE_COMPARED if k in wanted):
        return False
    stored_json = stored.get("jsonData") or {}
    if any(stored_json.get(k) != v for k, v in wanted.get("jsonData", {}).items()):
        return False
    secrets_set = stored.get("secureJsonFields") or {}
    return all(secrets_set.get(k) for k in wanted.get("secureJsonData", {}))


class Publisher:
    def __init__(self, url: str, credentials: Credentials, *, timeout_s: float = TIMEOUT_S) -> None:
        self._url = url
        try:
            self._api = GrafanaApi.from_url(url, credential=credentials.for_client(), timeout=timeout_s)
        except ValueError as error:
            raise PublishError(f"--grafana-url {url!r} is not a URL such as http://localhost:3000") from error

    def check(self) -> None:
        """Fail early and clearly: is Grafana there, and do the credentials work?"""
        _call(self._url, "checking its health", self._api.health.check)
        _call(self._url, "reading the current organisation", self._api.organization.get_current_organization)

    def datasource(self, model: Json) -> Change:
        stored = _existing(
            self._url,
            "reading the data source",
            lambda: self._api.datasource.get_datasource_by_uid(model["uid"]),
        )
        if stored is None:
            _call(self._url, "creating the data source", lambda: self._api.datasource.create_datasource(model))
            return Change("data source", model["name"], "created")
        if _datasource_matches(model, stored):
            return Change("data source", model["name"], "unchanged")
        _call(
            self._url,
            "updating the data source",
            lambda: self._api.datasource.update_datasource_by_uid(model["uid"], model),
        )
        return Change("data source", model["name"], "updated")

    def folder(self) -> Change:
        stored = _existing(self._url, "reading the folder", lambda: self._api.folder.get_folder(FOLDER_UID))
        if stored is None:
            _call(
                self._url,
                "creating the folder",
                lambda: self._api.folder.create_folder(FOLDER_TITLE, FOLDER_UID),
            )
            return Change("folder", FOLDER_TITLE, "created")
        if stored.get("title") == FOLDER_TITLE:
            return Change("folder", FOLDER_TITLE, "unchanged")
        _call(
            self._url,
            "renaming the folder",
            lambda: self._api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True),
        )
        return Change("folder", FOLDER_TITLE, "updated")

    def dashboard(self, board: Json) -> Change:
        stored = _existing(
            self._url,
            f"reading board {board['uid']}",
            lambda: self._api.dashboard.get_dashboard(board["uid"]),
        )
        if (
            stored is not None
            and stored.get("meta", {}).get("folderUid") == FOLDER_UID
            and not _differs(board, stored.get("dashboard", {}))
        ):
            return Change("dashboard", board["title"], "unchanged")
        body = {
            "dashboard": {**board, "id": None},
            "folderUid": FOLDER_UID,
            "overwrite": True,
            "message": "ftel dashboards publish",
        }
        _call(self._url, f"saving board {board['uid']}", lambda: self._api.dashboard.update_dashboard(body))
        return Change("dashboard", board["title"], "created" if stored is None else "updated")

    def alert_rule(self, rule: Json, folder_uid: str, group: str) -> Change:
        wanted = {**rule, "folderUID": folder_uid, "ruleGroup": group}
        stored = _existing(
            self._url,
            f"reading alert rule {rule['uid']}",
            lambda: self._api.alertingprovisioning.get_alertrule(rule["uid"]),
        )
        if stored is None:
            _call(
                self._url,
                f"creating alert rule {rule['uid']}",
                lambda: self._api.alertingprovisioning.create_alertrule(wanted),
            )
            return Change("alert rule", rule["title"], "created")
        if not _differs(wanted, stored):
            return Change("alert rule", rule["title"], "unchanged")
        _call(
            self._url,
            f"updating alert rule {rule['uid']}",
            lambda: self._api.alertingprovisioning.update_alertrule(rule["uid"], wanted),
        )
        return Change("alert rule", rule["title"], "updated")


def alert_rule_groups(tree: Path | None) -> Iterable[Json]:
    """Alert-rule groups from a provisioning tree's alerting files, if it has any."""
    if tree is None or not (tree / ALERT_RULES_DIR).is_dir():
        return []
    groups: list[Json] = []
    for path in sorted((tree / ALERT_RULES_DIR).glob("*.yaml")):
        groups += (yaml.safe_load(path.read_text()) or {}).get("groups", [])
    return groups


def publish(
    settings: Settings,
    url: str,
    credentials: Credentials,
    *,
    datasource_url: str | None = None,
    tree: Path | None = None,
) -> list[Change]:
    """Push everything; return what changed. ``tree`` (a built provisioning tree) supplies alert rules."""
    publisher = Publisher(url, credentials)
    publisher.check()
    changes = [
        publisher.datasource(
            datasource(settings, DataSourceTarget.from_settings(settings, datasource_url), secrets="inline")
        ),
        publisher.folder(),
    ]
    changes += [publisher.dashboard(board) for board in all_dashboards(site_calendar(settings.calendar))]
    for group in alert_rule_groups(tree):
        changes += [publisher.alert_rule(rule, FOLDER_UID, group["name"]) for rule in group.get("rules", [])]
    return changes
