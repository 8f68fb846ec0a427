"""Writing line protocol to InfluxDB, with retries and backoff; the only place that speaks HTTP for writes.

v1: POST /write?db=&rp=&precision=ms (InfluxDB 1.x, 2.x with DBRP, 3.x). v2: influxdb-client's write API
(org, bucket, token). Both raise WriteError after giving up; transient failures (connection errors, 5xx such
as 1.x's "engine: error syncing wal", 429) are retried, a 4xx that is not 429 is not.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ftel.influx import auth_headers
from ftel.settings import InfluxSettings


class WriteError(RuntimeError):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_s: float = 0.2
    max_s: float = 10.0
    exponential_base: float = 2.0
    max_retries: int | None = None  # None: retry transient failures until they pass

    def delays(self) -> Callable[[int], float]:
        return lambda attempt: min(self.max_s, self.initial_s * self.exponential_base**attempt)


class LineWriter(Protocol):
    def write(self, body: bytes) -> None: ...


class V1Writer:
    def __init__(self, settings: InfluxSettings) -> None:
        query = {"db": settings.database, "rp": settings.retention_policy, "precision": "ms"}
        self._url = f"{settings.url.rstrip('/')}/write?{urllib.parse.urlencode(query)}"
        self._timeout = settings.timeout_s
        self._headers = {"Content-Type": "text/plain; charset=utf-8", **auth_headers(settings)}

    def write(self, body: bytes) -> None:
        request = urllib.request.Request(self._url, data=body, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            transient = error.code >= 500 or error.code == 429
            raise WriteError(f"InfluxDB answered {error.code}: {detail}", transient=transient) from error
        except (urllib.error.URLError, OSError) as error:
            raise WriteError(f"cannot reach InfluxDB at {self._url.split('?')[0]}: {error}", transient=True) from error


class V2Writer:
    def __init__(self, settings: InfluxSettings) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        token = settings.token.get_secret_value() if settings.token else ""
        self._client = InfluxDBClient(
            url=settings.url, token=token, org=settings.org, timeout=int(settings.timeout_s * 1000)
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)
        self._bucket = settings.bucket
        self._org = settings.org

    def write(self, body: bytes) -> None:
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            self._api.write(
                bucket=self._bucket,
                org=self._org,
                record=body.decode(),
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]  # a str constant typed as the class
            )
        except ApiException as error:
            status = int(error.status or 0)
            raise WriteError(
                f"InfluxDB answered {status}: {error.body}", transient=status >= 500 or status == 429
            ) from error
        except HTTPError as error:
            raise WriteError(f"cannot reach InfluxDB: {error}", transient=True) from error


def make_writer(settings: InfluxSettings) -> LineWriter:
    return V2Writer(settings) if settings.api == "v2" else V1Writer(settings)


def write_with_retry(
    writer: LineWriter,
    body: bytes,
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, WriteError], None] = lambda attempt, error: None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    delay = policy.delays()
    attempt = 0
    while True:
        try:
            writer.write(body)
        except WriteError as error:
            if not error.transient or (policy.max_retries is not None and attempt >= policy.max_retries):
                raise
            on_retry(attempt, error)
            sleep(delay(attempt))
            attempt += 1
        else:
            return
