"""InfluxQL over HTTP /query (InfluxDB 1.x, 2.x with DBRP, 3.x): the read side shared by the live view,
boards' tests, the shift report and the alert worker. One pooled keep-alive client per InfluxQuery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import httpx

from ftel.settings import InfluxSettings
from ftel.storage.errors import StorageError
from ftel.storage.http import http_client


class QueryError(StorageError):
    """InfluxDB refused or could not answer a query; the text is InfluxDB's own message, ``status`` its HTTP
    status when it answered (401 or 403: the user may not read)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def unauthorized(self) -> bool:
        return self.status in (401, 403)


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
        self._client = http_client(settings)

    def query(self, influxql: str, *, epoch: str = "ms") -> list[Series]:
        """Run one statement; return its series. Raises QueryError with InfluxDB's own message."""
        params = {
            "db": self._settings.database,
            "rp": self._settings.retention_policy,
            "q": influxql,
            "epoch": epoch,
        }
        try:
            response = self._client.post("/query", data=params)
        except httpx.HTTPError as error:
            raise QueryError(f"cannot reach InfluxDB at {self._settings.url}: {error}") from error
        if response.status_code >= 300:
            raise QueryError(
                f"InfluxDB answered {response.status_code}: {response.text[:300]}", status=response.status_code
            )
        results = response.json().get("results", [])
        if not results:
            raise QueryError(f"no result for {influxql!r}: {response.text[:300]}")
        result = results[0]
        if "error" in result:
            raise QueryError(f"{result['error']} (query: {influxql})")
        return [Series(s["name"], s.get("tags", {}), s["columns"], s["values"]) for s in result.get("series", [])]

    def rows(self, influxql: str) -> list[dict[str, Any]]:
        """All rows of all series, each row with its series' tags merged in."""
        return [{**s.tags, **row} for s in self.query(influxql) for row in s.rows()]

    def close(self) -> None:
        self._client.close()

    def __del__(self) -> None:
        # Short-lived readers (a test, a report) often just drop theirs: close its pooled sockets then.
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
