"""What the ingest workers stored of each gateway, kept in InfluxDB so that any of them can tell when a vanished
gateway died (ingest/deaths.py decides it).

A shared subscription spreads a gateway's messages over the workers, so no one worker saw them all; each writes,
in the batch that stores them (so it is stored if and only if they are), one ``gateway_seen`` point per gateway,
worker and minute: the newest message time it stored in that minute and the newest boot the gateway announced.
The point's identity (gateway, worker, minute) makes a rewrite overwrite it: one point per gateway and worker a
minute at most, whatever the traffic. The newest of them all is read back when a will arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ftel.settings import InfluxSettings
from ftel.storage.lineproto import Point
from ftel.storage.query import InfluxQuery
from ftel.storage.schema import Field, Measurement, Tag

SEEN_BUCKET_MS = 60_000

GatewayKey = tuple[str, str, str]  # site, workshop, gateway id


def seen_bucket(ts_ms: int) -> int:
    return ts_ms - ts_ms % SEEN_BUCKET_MS


@dataclass(frozen=True, slots=True)
class Seen:
    """The newest message time stored of a gateway (its wills apart) and the newest boot it announced (0 when
    none of what was stored said)."""

    last_ms: int
    boot_id: int = 0


def seen_point(gateway: GatewayKey, seen: Seen, *, worker: str) -> Point:
    site, workshop, gateway_id = gateway
    tags = {Tag.SITE: site, Tag.WORKSHOP: workshop, Tag.GATEWAY_ID: gateway_id, Tag.WORKER: worker}
    fields: dict[str, str | int | float | bool] = {Field.LAST_MS: seen.last_ms}
    if seen.boot_id:
        # Left out while unknown: a point rewritten at the same time keeps the boot stored before.
        fields[Field.BOOT_ID] = seen.boot_id
    return Point(Measurement.GATEWAY_SEEN, tags, fields, seen_bucket(seen.last_ms))


def seen_query(gateway: GatewayKey, *, since_ms: int) -> str:
    """The newest of every worker's record of ``gateway`` from ``since_ms`` on (ids follow the contract's id
    pattern, so they need no escaping inside quotes)."""
    site, workshop, gateway_id = gateway
    return (
        f'SELECT max("{Field.LAST_MS}") AS "{Field.LAST_MS}", max("{Field.BOOT_ID}") AS "{Field.BOOT_ID}" '
        f'FROM "{Measurement.GATEWAY_SEEN}" WHERE "{Tag.SITE}" = \'{site}\' AND "{Tag.WORKSHOP}" = \'{workshop}\' '
        f"AND \"{Tag.GATEWAY_ID}\" = '{gateway_id}' AND time >= {seen_bucket(since_ms)}ms"
    )


class SeenReader(Protocol):
    """The read side of the record (a port: the ingest worker's unit tests fake it)."""

    def last_seen(self, gateway: GatewayKey, *, since_ms: int) -> Seen | None: ...

    def close(self) -> None: ...


class InfluxSeen:
    def __init__(self, settings: InfluxSettings) -> None:
        self._query = InfluxQuery(settings)

    def last_seen(self, gateway: GatewayKey, *, since_ms: int) -> Seen | None:
        """Raises ftel.storage.query.QueryError when InfluxDB does not answer."""
        rows = self._query.rows(seen_query(gateway, since_ms=since_ms))
        if not rows or rows[0][Field.LAST_MS] is None:
            return None
        return Seen(int(rows[0][Field.LAST_MS]), int(rows[0][Field.BOOT_ID] or 0))

    def close(self) -> None:
        self._query.close()
