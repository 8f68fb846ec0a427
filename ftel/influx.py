"""InfluxQL over HTTP /query (InfluxDB 1.x, 2.x with DBRP, 3.x): the read side shared by the live view,
boards' tests, the shift report and the alert worker."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ftel.settings import InfluxSettings


def auth_headers(settings: InfluxSettings) -> dict[str, str]:
    """The Authorization header for InfluxDB's HTTP API: a token (2.x, 3.x) wins over user and password (1.x)."""
    if settings.token is not None:
        return {"Authorization": f"Token {settings.token.get_secret_value()}"}
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else ""
        return {"Authorization": "Basic " + base64.b64encode(f"{settings.username}:{password}".encode()).decode()}
    return {}


class QueryError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]

    def rows(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, v, strict=True)) for v in self.values]


class InfluxQuery:
    def __init__(self, settings: InfluxSettings) -> None:
        self._settings = settings
        self._base = settings.url.rstrip("/")
        self._headers = auth_headers(settings)

    def query(self, influxql: str, *, epoch: str = "ms") -> list[Series]:
        """Run one statement; return its series. Raises QueryError with InfluxDB's own message."""
        params = {
            "db": self._settings.database,
            "rp": self._settings.retention_policy,
            "q": influxql,
            "epoch": epoch,
        }
        request = urllib.request.Request(
            f"{self._base}/query",
            data=urllib.parse.urlencode(params).encode(),
            headers=self._headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._settings.timeout_s) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise QueryError(
                f"InfluxDB answered {error.code}: {error.read().decode(errors='replace')[:300]}"
            ) from error
        except (urllib.error.URLError, OSError) as error:
            raise QueryError(f"cannot reach InfluxDB at {self._base}: {error}") from error
        results = body.get("results", [])
        if not results:
            raise QueryError(f"no result for {influxql!r}: {body}")
        result = results[0]
        if "error" in result:
            raise QueryError(f"{result['error']} (query: {influxql})")
        return [Series(s["name"], s.get("tags", {}), s["columns"], s["values"]) for s in result.get("series", [])]

    def rows(self, influxql: str) -> list[dict[str, Any]]:
        """All rows of all series, each row with its series' tags merged in."""
        return [{**s.tags, **row} for s in self.query(influxql) for row in s.rows()]
