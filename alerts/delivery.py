"""Where alert transitions go: the retained alert topic, the InfluxDB ``alerts`` measurement, webhooks.

Bodies are built here from an AlertRecord (pure); the senders wrap third-party errors in DeliveryError.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable

import httpx

from alerts.errors import DeliveryError
from alerts.lifecycle import STATUS_CODES, AlertRecord
from alerts.rules import WebhookTarget
from alerts.webhook_policy import IPAddress, WebhookRefused, check_addresses
from ftel.retry import parse_retry_after
from ftel.storage import points as storage_points
from ftel.storage.lineproto import Point

MQTT_SINK = "mqtt"
INFLUX_SINK = "influx"
WEBHOOK_BODY_VERSION = 1
# Receivers one worker keeps connections to; a few webhooks per plant.
WEBHOOK_CONNECTIONS = 8


def webhook_sink(target: WebhookTarget) -> str:
    return f"webhook:{target.name}"


def record_json(record: AlertRecord) -> str:
    return record.model_dump_json()


def webhook_body(record: AlertRecord) -> str:
    """The JSON a webhook receives (docs/alerts.md): the alert plus an event id to deduplicate on."""
    duration_ms = None if record.resolved_ms is None else record.resolved_ms - record.started_ms
    body = {
        "version": WEBHOOK_BODY_VERSION,
        "event_id": record.event_id,
        **record.model_dump(mode="json"),
        "duration_s": None if duration_ms is None else duration_ms / 1000,
    }
    return json.dumps(body, sort_keys=True)


def alert_point(record: AlertRecord) -> Point:
    return storage_points.alert_point(
        site=record.site,
        workshop=record.workshop,
        rule=record.rule,
        severity=record.severity,
        subject=record.subject,
        alert_id=record.alert_id,
        status=record.status.value,
        status_code=STATUS_CODES[record.status],
        summary=record.summary,
        started_ms=record.started_ms,
        resolved_ms=record.resolved_ms,
        value=record.value,
        changed_ms=record.changed_ms,
    )


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order."""
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # without an IPv6 zone
        if address not in found:
            found.append(address)
    return found


def webhook_client() -> httpx.Client:
    """One pooled client for a worker's webhooks (keep-alive per receiver). It follows no redirect, which could
    lead past the address check, and ignores proxy variables, behind which the check would mean nothing."""
    return httpx.Client(
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=WEBHOOK_CONNECTIONS, max_keepalive_connections=WEBHOOK_CONNECTIONS),
    )


_shared: httpx.Client | None = None


def _shared_client() -> httpx.Client:
    global _shared  # noqa: PLW0603 - one lazily made pool for callers that bring none
    if _shared is None:
        _shared = webhook_client()
    return _shared


def post_webhook(
    target: WebhookTarget,
    body: str,
    *,
    client: httpx.Client | None = None,
    resolve: Callable[[str, int], list[IPAddress]] = resolve_host,
) -> None:
    """One attempt; raises DeliveryError unless the receiver answered 2xx within the timeout.

    The host is resolved here and every address checked (webhook_policy); the request then goes to a checked
    address, with the URL's host in the Host header and as the TLS server name, so the name cannot be made
    to point elsewhere between the check and the connection."""
    url = httpx.URL(target.url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = resolve(url.host, port)
        check_addresses(target.name, url.host, addresses, target.allow_hosts)
    except WebhookRefused as error:
        raise DeliveryError(str(error)) from error
    except OSError as error:
        raise DeliveryError(f"webhook {target.name}: cannot resolve {url.host}: {error}") from error
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ftel-alerts",
        **target.headers,
        "Host": url.netloc.decode("ascii"),
    }
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    pool = client or _shared_client()
    for n, address in enumerate(addresses, start=1):
        try:
            response = pool.post(
                url.copy_with(host=str(address)),
                content=body.encode(),
                headers=headers,
                timeout=target.timeout_s,
                extensions=extensions,
            )
        except httpx.ConnectError as error:
            if n < len(addresses):
                continue  # the next address of the same, checked, name
            raise DeliveryError(f"webhook {target.name} at {target.url} unreachable: {error}") from error
        except httpx.HTTPError as error:
            raise DeliveryError(f"webhook {target.name} at {target.url} unreachable: {error}") from error
        if not 200 <= response.status_code < 300:
            raise DeliveryError(
                f"webhook {target.name} answered {response.status_code}",
                retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
            )
        return
