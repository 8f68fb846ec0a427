"""Who connects, in which role, and what each role may do on the broker and in InfluxDB (pure).

Every process connects as an identity: a gateway by its gateway id (bound to its site and workshop), ingest
workers as ``ingest-1`` … ``ingest-N``, the alert worker as ``alerts``, people's tools as ``supervisor``
(read-only) or ``maintenance`` (read, acknowledge alerts), operators and tests as ``admin``. The MQTT username
is the identity and, because the broker uses the username as the client id, so is the client id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from ftel.contract.topics import (
    ACK_TOPIC,
    ALERT_PREFIX,
    CONFIRM_PREFIX,
    DEAD_LETTER_PREFIX,
    HEALTH_PREFIX,
    ID_PATTERN,
    PREFIX,
    RESERVED_SITES,
    confirm_topic,
    data_filter,
    dead_letter_topic,
    under,
    workshop_filter,
)

__all__ = ["ACK_TOPIC", "RESERVED_SITES"]
from ftel.security.errors import AuthError

_ID_RE = re.compile(ID_PATTERN)

DATA_TOPICS = data_filter()


class Role(StrEnum):
    GATEWAY = "gateway"
    INGEST = "ingest"
    ALERTS = "alerts"
    SUPERVISOR = "supervisor"
    MAINTENANCE = "maintenance"
    ADMIN = "admin"
    # A person at the workshop's operator page (operators/), bound to a site and its workshops.
    OPERATOR = "operator"


class InfluxUser(StrEnum):
    """The InfluxDB users: one per kind of access, shared by the identities of the roles that need it."""

    ADMIN = "ftel_admin"
    INGEST = "ftel_ingest"
    ALERTS = "ftel_alerts"
    READER = "ftel_reader"
    # The operator page writes people's reasons with it (InfluxDB 1.x grants per database: WRITE is the least).
    OPERATOR = "ftel_operator"


# What each InfluxDB user may do on the database (ALL: the server's admin, created first).
INFLUX_PRIVILEGES: dict[InfluxUser, str] = {
    InfluxUser.ADMIN: "ALL",
    InfluxUser.INGEST: "WRITE",
    InfluxUser.ALERTS: "WRITE",
    InfluxUser.READER: "READ",
    InfluxUser.OPERATOR: "WRITE",
}
ROLE_INFLUX_USER: dict[Role, InfluxUser | None] = {
    Role.GATEWAY: None,  # gateways never talk to InfluxDB
    Role.INGEST: InfluxUser.INGEST,
    Role.ALERTS: InfluxUser.ALERTS,
    Role.SUPERVISOR: InfluxUser.READER,
    Role.MAINTENANCE: InfluxUser.READER,
    Role.ADMIN: InfluxUser.ADMIN,
    Role.OPERATOR: InfluxUser.OPERATOR,
}

# The identities every installation has besides its gateways and ingest workers.
ALERTS, SUPERVISOR, MAINTENANCE, ADMIN = "alerts", "supervisor", "maintenance", "admin"
SERVICE_IDENTITIES: dict[str, Role] = {
    ALERTS: Role.ALERTS,
    SUPERVISOR: Role.SUPERVISOR,
    MAINTENANCE: Role.MAINTENANCE,
    ADMIN: Role.ADMIN,
}
DEFAULT_INGEST_WORKERS = 8


def ingest_identity(number: int) -> str:
    return f"ingest-{number}"


def check_name(name: str, what: str = "identity") -> str:
    if not _ID_RE.match(name):
        raise AuthError(f"{what} {name!r} is not a valid name (letters, digits, '_' or '-', at most 64)")
    return name


@dataclass(frozen=True, slots=True)
class Identity:
    """One MQTT username (= client id) with its role; a gateway is bound to one site and workshop, an operator
    to one site and one or more workshops (``workshop`` lists them with commas)."""

    name: str
    role: Role
    site: str | None = None
    workshop: str | None = None

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.role in (Role.GATEWAY, Role.OPERATOR):
            if self.site is None or self.workshop is None:
                raise AuthError(f"{self.role.value} {self.name} needs its site and workshop")
            check_name(self.site, "site")
            if self.role is Role.GATEWAY:
                check_name(self.workshop, "workshop")
            for workshop in self.workshops:
                check_name(workshop, "workshop")
            if self.site in RESERVED_SITES:
                raise AuthError(
                    f"gateway {self.name}: site {self.site!r} is reserved (it names the topics "
                    f"{PREFIX}/{self.site}/…); choose another site id"
                )
        elif self.site is not None or self.workshop is not None:
            raise AuthError(f"identity {self.name} ({self.role}) is not bound to a site or workshop")

    @property
    def binding(self) -> tuple[str, str]:
        """A gateway's site and workshop."""
        if self.site is None or self.workshop is None:
            raise AuthError(f"identity {self.name} ({self.role}) is not bound to a site or workshop")
        return self.site, self.workshop

    @property
    def workshops(self) -> tuple[str, ...]:
        """The workshops an operator (or a gateway) is bound to."""
        return tuple(w.strip() for w in (self.workshop or "").split(","))

    @property
    def influx_user(self) -> InfluxUser | None:
        return ROLE_INFLUX_USER[self.role]

    def describe(self) -> str:
        where = f" of {self.site}/{self.workshop}" if self.role in (Role.GATEWAY, Role.OPERATOR) else ""
        return f"{self.name} ({self.role}{where})"


def gateway(gateway_id: str, site: str, workshop: str) -> Identity:
    return Identity(gateway_id, Role.GATEWAY, site, workshop)


@dataclass(frozen=True, slots=True)
class Grants:
    """Topic filters an identity may publish to and receive from (Mosquitto ACL ``write`` and ``read``)."""

    publish: tuple[str, ...]
    receive: tuple[str, ...]


def grants(identity: Identity) -> Grants:
    """Least privilege per role; docs/security.md has the same table for people."""
    match identity.role:
        case Role.GATEWAY:
            site, workshop = identity.binding
            return Grants(
                publish=(workshop_filter(site, workshop),),
                receive=(confirm_topic(site, workshop, identity.name),),
            )
        case Role.INGEST:
            return Grants(
                publish=(under(DEAD_LETTER_PREFIX), under(CONFIRM_PREFIX), under(HEALTH_PREFIX)),
                receive=(DATA_TOPICS,),
            )
        case Role.ALERTS:
            return Grants(
                publish=(under(ALERT_PREFIX), dead_letter_topic(identity.name)),
                receive=(DATA_TOPICS, under(ALERT_PREFIX), ACK_TOPIC),
            )
        case Role.SUPERVISOR:
            return Grants(publish=(), receive=(under(PREFIX),))
        case Role.MAINTENANCE:
            return Grants(publish=(ACK_TOPIC,), receive=(under(PREFIX),))
        case Role.OPERATOR:
            return Grants(publish=(), receive=())  # the page talks to InfluxDB only
        case Role.ADMIN:
            # '#' does not match topics that begin with '$' (MQTT 4.7.2): the broker's $SYS tree is named.
            return Grants(publish=("#", "$SYS/#"), receive=("#", "$SYS/#"))


def roster(gateways: Iterable[Identity], ingest_workers: int) -> tuple[Identity, ...]:
    """Every identity an installation needs: its gateways, ingest-1 … ingest-N and the service identities."""
    if ingest_workers < 1:
        raise AuthError(f"ingest workers must be at least 1, not {ingest_workers}")
    wanted = [
        *gateways,
        *(Identity(ingest_identity(n), Role.INGEST) for n in range(1, ingest_workers + 1)),
        *(Identity(name, role) for name, role in SERVICE_IDENTITIES.items()),
    ]
    check_unique(wanted)
    return tuple(wanted)


def check_unique(identities: Sequence[Identity]) -> None:
    seen: dict[str, Identity] = {}
    for identity in identities:
        other = seen.setdefault(identity.name, identity)
        if other is not identity and other != identity:
            raise AuthError(
                f"two identities are called {identity.name}: {other.describe()} and {identity.describe()}; "
                "every gateway id must be unique and differ from the service names "
                f"({', '.join(SERVICE_IDENTITIES)}, ingest-N)"
            )
