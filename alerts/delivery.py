"""Where alert transitions go: the retained alert topic, the InfluxDB ``alerts`` measurement, webhooks.

Bodies are built here from an AlertRecord (pure); the senders wrap third-party errors in DeliveryError.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from alerts.errors import DeliveryError
from alerts.lifecycle import STATUS_CODES, AlertRecord
from alerts.rules import WebhookTarget
from ftel.contract.topics import ALERT_PREFIX
from ftel.storage.lineproto import Point

MEASUREMENT = "alerts"
# Commands to the worker (outside the alert topics, so a wildcard over alerts never sees them).
ACK_TOPIC = f"{ALERT_PREFIX}-cmd/ack"
MQTT_SINK = "mqtt"
INFLUX_SINK = "influx"
WEBHOOK_BODY_VERSION = 1


def alert_topic(alert_id: str) -> str:
    return f"{ALERT_PREFIX}/{alert_id}"


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
    return Point(
        measurement=MEASUREMENT,
        tags={
            "site": record.site,
            "workshop": record.workshop,
            "rule": record.rule,
            "severity": record.severity,
            "subject": record.subject,
        },
        fields={
            "alert_id": record.alert_id,
            "status": record.status.value,
            "status_code": STATUS_CODES[record.status],
            "summary": record.summary,
            "started_ms": record.started_ms,
            "resolved_ms": record.resolved_ms or 0,
            "value": float(record.value),
        },
        time_ms=record.changed_ms,
    )


def post_webhook(target: WebhookTarget, body: str) -> None:
    """One attempt; raises DeliveryError unless the receiver answered 2xx within the timeout."""
    request = urllib.request.Request(
        target.url,
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "ftel-alerts", **target.headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=target.timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as error:
        raise DeliveryError(f"webhook {target.name} answered {error.code}") from error
    except (urllib.error.URLError, OSError) as error:
        raise DeliveryError(f"webhook {target.name} at {target.url} unreachable: {error}") from error


def backoff_s(attempts: int, *, initial_s: float, max_s: float, base: float) -> float:
    return float(min(max_s, initial_s * base**attempts))
