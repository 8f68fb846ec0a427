"""Administrative InfluxQL for the local InfluxDB 1.x (users, grants, databases) over the shared HTTP client.

Kept apart from the read side (ftel.storage.query): these statements answer with series that have no name
(``SHOW USERS``) or no series at all, and their refusals decide what the stack does next.
"""

from __future__ import annotations

from typing import Any, Self

import httpx

from ftel.errors import FtelError
from ftel.settings import InfluxSettings
from ftel.storage.http import http_client


class InfluxAdminError(FtelError):
    """InfluxDB refused a statement; the text is InfluxDB's own message."""


class InfluxAdmin:
    def __init__(self, settings: InfluxSettings) -> None:
        self._url = settings.url
        self._client = http_client(settings)

    def run(self, statement: str) -> list[dict[str, Any]]:
        """Run one statement; return its rows (every series' values keyed by column)."""
        try:
            response = self._client.post("/query", data={"q": statement})
        except httpx.HTTPError as failure:
            raise InfluxAdminError(f"cannot reach InfluxDB at {self._url}: {failure}") from failure
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:300]}
        results = body.get("results") or [body]
        refusal = results[0].get("error") or body.get("error")
        if refusal or response.status_code >= 300:
            # Never a password into a log or an exception.
            shown = statement.split(" WITH PASSWORD", maxsplit=1)[0].split(" = '", maxsplit=1)[0]
            raise InfluxAdminError(f"{refusal or response.status_code} (statement: {shown})")
        return [
            dict(zip(series["columns"], values, strict=True))
            for series in results[0].get("series", [])
            for values in series.get("values", [])
        ]

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
