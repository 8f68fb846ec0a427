"""Writing line protocol to InfluxDB: the only place that speaks HTTP for writes.

v1: POST /write?db=&rp=&precision=ms (InfluxDB 1.x, 2.x with DBRP, 3.x), over one pooled keep-alive client.
v2: influxdb-client's write API (org, bucket, token). Every refusal is classified, because what to do next
depends on it, and "gave up" is never "written":

* ``TRANSIENT`` (connection errors, 5xx such as 1.x's "engine: error syncing wal", 429): retry with
  exponential backoff and jitter, honouring ``Retry-After``.
* ``BLOCKING`` (401/403 credentials, 404 database or bucket missing, 413 body too large, any other 4xx):
  nothing in the batch is wrong, the installation is. Writing again will not help until a person fixes it;
  the caller must keep the data (ingest stops acknowledging) and try again later.
* ``LINES`` (400, 422: unparsable line, field type conflict, point outside the retention policy): some lines
  of the batch are refused; the rest may have been written. The caller finds the refused lines by bisecting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

import httpx

from ftel.errors import MachineryError
from ftel.retry import RetryPolicy, parse_retry_after
from ftel.settings import InfluxSettings
from ftel.storage.errors import StorageError
from ftel.storage.http import http_client

# The policy lives in ftel/retry.py (every loop uses it); writers take it, so it is named here too.
__all__ = [
    "LineWriter",
    "Refusal",
    "RetryPolicy",
    "V1Writer",
    "V2Writer",
    "WriteError",
    "classify",
    "direct_write_policy",
    "make_writer",
    "refused",
    "write_with_retry",
]


class Refusal(StrEnum):
    TRANSIENT = "transient"
    BLOCKING = "blocking"
    LINES = "lines"


ADVICE: dict[int, str] = {
    401: "check the InfluxDB credentials (FTEL_INFLUX__USERNAME/PASSWORD or TOKEN)",
    403: "the InfluxDB user or token may not write here: grant WRITE on the database (or bucket)",
    404: "create the database (ftel stack up does) or the bucket, or fix FTEL_INFLUX__DATABASE",
    413: "lower FTEL_INGEST__BATCH_SIZE or raise InfluxDB's max-body-size",
}


def classify(status: int) -> Refusal:
    if status == 429 or status >= 500:
        return Refusal.TRANSIENT
    if status in (400, 422):
        return Refusal.LINES
    return Refusal.BLOCKING


class WriteError(StorageError, MachineryError):
    """InfluxDB did not store a batch. ``refusal`` says what the caller should do about it."""

    def __init__(
        self, message: str, *, refusal: Refusal, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def transient(self) -> bool:
        return self.refusal is Refusal.TRANSIENT


def refused(status: int, body: str, *, retry_after: str | None = None) -> WriteError:
    refusal = classify(status)
    advice = ADVICE.get(status, "")
    text = f"InfluxDB answered {status}: {body.strip()[:500]}" + (f" ({advice})" if advice else "")
    return WriteError(text, refusal=refusal, status=status, retry_after_s=parse_retry_after(retry_after))


class LineWriter(Protocol):
    def write(self, body: bytes) -> None: ...

    def close(self) -> None: ...


class V1Writer:
    def __init__(self, settings: InfluxSettings) -> None:
        self._client = http_client(settings)
        self._params = {"db": settings.database, "rp": settings.retention_policy, "precision": "ms"}
        self._where = f"{settings.url.rstrip('/')} (database {settings.database})"

    def write(self, body: bytes) -> None:
        try:
            response = self._client.post(
                "/write", params=self._params, content=body, headers={"Content-Type": "text/plain; charset=utf-8"}
            )
        except httpx.HTTPError as error:
            raise WriteError(f"cannot reach InfluxDB at {self._where}: {error}", refusal=Refusal.TRANSIENT) from error
        if response.status_code >= 300:
            raise refused(response.status_code, response.text, retry_after=response.headers.get("Retry-After"))

    def close(self) -> None:
        self._client.close()

    def __del__(self) -> None:
        self.close()  # a dropped writer closes its pooled sockets


class V2Writer:
    def __init__(self, settings: InfluxSettings) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        token = settings.token.get_secret_value() if settings.token else ""
        self._client = InfluxDBClient(
            url=settings.url,
            token=token,
            org=settings.org,
            timeout=int(settings.timeout_s * 1000),
            ssl_ca_cert=str(settings.ca_file) if settings.ca_file else None,
            verify_ssl=settings.verify_tls,
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
            headers: dict[str, str] = dict(error.headers or {})
            raise refused(int(error.status or 0), str(error.body), retry_after=headers.get("Retry-After")) from error
        except HTTPError as error:
            raise WriteError(f"cannot reach InfluxDB: {error}", refusal=Refusal.TRANSIENT) from error

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]


def make_writer(settings: InfluxSettings) -> LineWriter:
    return V2Writer(settings) if settings.api == "v2" else V1Writer(settings)


def direct_write_policy(influx: InfluxSettings) -> RetryPolicy:
    """How a command that writes straight to InfluxDB (backfill, settling orders, the operator page) retries:
    the settings' bounds, and a cap after which it gives up (``write_with_retry`` then raises)."""
    return RetryPolicy(
        influx.write_retry_initial_s, influx.write_retry_max_s, max_total_s=influx.write_retry_max_total_s
    )


def write_with_retry(
    writer: LineWriter,
    body: bytes,
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, WriteError, float], None] = lambda attempt, error, delay: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Write ``body``; retry transient failures by ``policy``. Raises the WriteError of the last attempt when
    the refusal is not transient or the policy's total time is spent."""
    started = clock()
    attempt = 0
    while True:
        try:
            writer.write(body)
        except WriteError as error:
            if not error.transient:
                raise
            delay = policy.delay(attempt, retry_after_s=error.retry_after_s)
            if policy.spent(started, clock(), delay):
                raise
            on_retry(attempt, error, delay)
            sleep(delay)
            attempt += 1
        else:
            return
