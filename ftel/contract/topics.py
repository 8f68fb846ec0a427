"""The topic scheme: ftel/v1/<site>/<workshop>/<machine type>/<machine id>/<kind>.

Gateways use the reserved machine-type level ``gateway`` with their gateway id in the machine-id place,
so every data topic has the same depth and one shared subscription takes them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from ftel.contract.errors import ContractError
from ftel.contract.states import MachineType

ROOT = "ftel"
CONTRACT_VERSION = 1
PREFIX = f"{ROOT}/v{CONTRACT_VERSION}"
GATEWAY_LEVEL = "gateway"
# Outside the 7-level data filter, so none of these loops back into ingest.
DEAD_LETTER_PREFIX = f"{PREFIX}/deadletter"
ALERT_PREFIX = f"{PREFIX}/alerts"
CONFIRM_PREFIX = f"{PREFIX}/confirm"
HEALTH_PREFIX = f"{PREFIX}/health"
# Commands to the alert worker (outside the alert topics, so a wildcard over alerts never sees them).
ACK_TOPIC = f"{ALERT_PREFIX}-cmd/ack"
# A site is the third topic level, where these names already mean something else: no site may take them.
RESERVED_SITES = frozenset(
    topic.split("/")[2] for topic in (CONFIRM_PREFIX, HEALTH_PREFIX, DEAD_LETTER_PREFIX, ALERT_PREFIX, ACK_TOPIC)
)

# Ids become topic levels and InfluxDB tags: keep them plain so they need no escaping in topics.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)


class MachineKind(StrEnum):
    META = "meta"
    EVENT = "event"
    WINDOW = "window"
    TELEMETRY = "telemetry"
    # The program the controller runs (docs/orders.md); an older reader dead-letters it, nothing else changes.
    JOB = "job"


class GatewayKind(StrEnum):
    STATUS = "status"
    HEARTBEAT = "heartbeat"
    ROLLUP = "rollup"


@dataclass(frozen=True, slots=True)
class TopicAddress:
    """A parsed data topic. ``machine_type`` is ``gateway`` for gateway topics."""

    site: str
    workshop: str
    machine_type: str
    machine_id: str
    kind: str

    @property
    def is_gateway(self) -> bool:
        return self.machine_type == GATEWAY_LEVEL

    def __str__(self) -> str:
        return "/".join((PREFIX, self.site, self.workshop, self.machine_type, self.machine_id, self.kind))


def check_id(value: str, what: str) -> str:
    if not _ID_RE.match(value):
        raise ContractError(f"{what} {value!r} is not a valid id (letters, digits, '_' or '-', at most 64)")
    return value


def machine_topic(site: str, workshop: str, machine_type: str, machine_id: str, kind: MachineKind) -> str:
    return str(TopicAddress(site, workshop, machine_type, machine_id, kind.value))


def gateway_topic(site: str, workshop: str, gateway_id: str, kind: GatewayKind) -> str:
    return str(TopicAddress(site, workshop, GATEWAY_LEVEL, gateway_id, kind.value))


def confirm_topic(site: str, workshop: str, gateway_id: str) -> str:
    """Where ingest tells one gateway which of its sequence numbers are stored."""
    return f"{CONFIRM_PREFIX}/{site}/{workshop}/{gateway_id}"


def health_topic(component: str, name: str) -> str:
    """Where a worker keeps its health (retained): readable while InfluxDB is not."""
    return f"{HEALTH_PREFIX}/{component}/{name}"


def dead_letter_topic(worker: str) -> str:
    """Where one consumer (an ingest worker, the alert worker) puts what it could not use, with the reason."""
    return f"{DEAD_LETTER_PREFIX}/{worker}"


def alert_topic(alert_id: str) -> str:
    """Where one alert's current record is kept (retained)."""
    return f"{ALERT_PREFIX}/{alert_id}"


def alerts_filter() -> str:
    """Every alert's topic (not the commands to the alert worker)."""
    return f"{ALERT_PREFIX}/+"


def is_alert_topic(topic: str) -> bool:
    return topic.startswith(f"{ALERT_PREFIX}/")


def under(prefix: str) -> str:
    """Everything below one of this scheme's prefixes (PREFIX, DEAD_LETTER_PREFIX, ...): an ACL's or a tap's
    filter."""
    return f"{prefix}/#"


def workshop_filter(site: str, workshop: str) -> str:
    """Every data topic of one workshop (what its gateway may publish)."""
    return f"{PREFIX}/{site}/{workshop}/+/+/+"


def machine_kind_filter(site: str, kind: MachineKind) -> str:
    """One kind of machine message, every machine of a site (e.g. the retained metas)."""
    return f"{PREFIX}/{site}/+/+/+/{kind.value}"


def gateway_kind_filter(site: str, kind: GatewayKind) -> str:
    """One kind of gateway message, every gateway of a site (e.g. the retained statuses, the heartbeats)."""
    return f"{PREFIX}/{site}/+/{GATEWAY_LEVEL}/+/{kind.value}"


def data_filter(site: str = "+") -> str:
    """The subscription filter for every data topic (optionally one site)."""
    return f"{PREFIX}/{site}/+/+/+/+"


def shared(group: str, topic_filter: str) -> str:
    return f"$share/{group}/{topic_filter}"


def parse_topic(topic: str) -> TopicAddress:
    parts = topic.split("/")
    if len(parts) != 7 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise ContractError(f"topic {topic!r} is not of the form {PREFIX}/site/workshop/type/id/kind")
    _, _, site, workshop, machine_type, machine_id, kind = parts
    check_id(site, "site")
    if site in RESERVED_SITES:
        raise ContractError(f"site {site!r} is reserved (it names other topics: {', '.join(sorted(RESERVED_SITES))})")
    check_id(workshop, "workshop")
    check_id(machine_id, "machine id")
    if machine_type == GATEWAY_LEVEL:
        if kind not in GatewayKind.__members__.values():
            raise ContractError(f"unknown gateway message kind {kind!r} in topic {topic!r}")
    else:
        if machine_type not in MachineType.__members__.values():
            known = ", ".join(t.value for t in MachineType)
            raise ContractError(f"unknown machine type {machine_type!r} (known: {known})")
        if kind not in MachineKind.__members__.values():
            raise ContractError(f"unknown machine message kind {kind!r} in topic {topic!r}")
    return TopicAddress(site, workshop, machine_type, machine_id, kind)
