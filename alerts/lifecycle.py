"""An alert's life: firing → (acknowledged) → resolved, one alert per problem, with a hold-down (pure).

The engine says which conditions hold right now; the lifecycle turns that into transitions. A firing alert
resolves only after its condition has stayed clear for the rule's hold-down; if the same condition (rule,
subject, detail) comes back within it, the same alert simply goes on. Alert ids are a digest of the problem
(site, workshop, rule, subject, detail, start time), so a replay after a restart yields the same ids.

Firing, clearing and the hold-down are timed on the subject's own clock (for a machine: its gateway's time),
so they depend on what that subject's source said and not on how other sources' messages interleave with it;
``changed_ms``, the time a status was reached, is the engine's clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict


class Status(StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


STATUS_CODES: dict[Status, int] = {Status.FIRING: 0, Status.ACKNOWLEDGED: 1, Status.RESOLVED: 2}


class Subject(Protocol):
    """What an alert is about: a condition or an alert record."""

    @property
    def site(self) -> str: ...
    @property
    def workshop(self) -> str: ...
    @property
    def subject_type(self) -> str: ...
    @property
    def subject(self) -> str: ...


# The time a subject is judged at (see the module docstring).
SubjectClock = Callable[[Subject], int]


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule that holds for a subject now. ``started_ms``: when the problem began (the DOWN began, the
    gateway fell silent); ``condition_ms``: when the rule's threshold was crossed."""

    rule: str
    severity: str
    site: str
    workshop: str
    subject: str
    subject_type: str  # machine | gateway
    machine_type: str  # "" for gateways
    detail: str  # the reason of a repeated-stops alert, else ""
    started_ms: int
    condition_ms: int
    value: float
    summary: str

    @property
    def key(self) -> str:
        return condition_key(self.site, self.workshop, self.rule, self.subject, self.detail)


def condition_key(site: str, workshop: str, rule: str, subject: str, detail: str) -> str:
    return "/".join((site, workshop, rule, subject, detail))


def alert_id(condition: Condition) -> str:
    digest = hashlib.blake2b(
        repr(
            (
                condition.site,
                condition.workshop,
                condition.rule,
                condition.subject,
                condition.detail,
                condition.started_ms,
            )
        ).encode(),
        digest_size=6,
    ).hexdigest()
    return f"{condition.rule}-{digest}"


class AlertRecord(BaseModel):
    """What is published (retained, ftel/v1/alerts/<alert_id>), written to InfluxDB and sent to webhooks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alert_id: str
    status: Status
    rule: str
    severity: str
    site: str
    workshop: str
    subject: str
    subject_type: str
    machine_type: str
    detail: str
    summary: str
    started_ms: int
    condition_ms: int
    fired_ms: int
    acknowledged_ms: int | None = None
    acknowledged_by: str | None = None
    resolved_ms: int | None = None
    value: float
    # The engine clock when this status was reached: the time of the InfluxDB point.
    changed_ms: int

    @property
    def key(self) -> str:
        return condition_key(self.site, self.workshop, self.rule, self.subject, self.detail)

    @property
    def event_id(self) -> str:
        """One per transition: receivers deduplicate on it (delivery is at least once)."""
        return f"{self.alert_id}:{self.status.value}"

    @property
    def is_open(self) -> bool:
        return self.status is not Status.RESOLVED


class LifecycleState(BaseModel):
    """Serializable: the worker stores it with each commit."""

    open: dict[str, AlertRecord] = {}  # condition key -> alert
    clear_since: dict[str, int] = {}  # condition key -> when its condition was last seen clearing
    resolved: dict[str, AlertRecord] = {}  # alert id -> recently resolved alert (kept for list and ack)


class Lifecycle:
    def __init__(self, state: LifecycleState | None = None) -> None:
        self.state = state or LifecycleState()

    def alerts(self) -> list[AlertRecord]:
        return [*self.state.open.values(), *self.state.resolved.values()]

    def find(self, alert_id: str) -> AlertRecord | None:
        return next((a for a in self.alerts() if a.alert_id == alert_id), None)

    def reconcile(
        self,
        now_ms: int,
        conditions: Iterable[Condition],
        *,
        hold_down_ms: Mapping[str, int],
        held: frozenset[str] = frozenset(),
        keep_resolved_ms: int = 24 * 3600 * 1000,
        clock: SubjectClock | None = None,
    ) -> list[AlertRecord]:
        """Transitions caused by the conditions holding at ``now_ms`` (the engine's clock). ``held``: subjects
        whose state is unknown right now (their gateway is gone): their alerts neither fire nor resolve.
        ``clock``: each subject's own time (default: ``now_ms`` for all)."""
        st = self.state
        out: list[AlertRecord] = []
        at: SubjectClock = clock or (lambda _: now_ms)
        active: dict[str, Condition] = {c.key: c for c in conditions}
        for key, condition in active.items():
            st.clear_since.pop(key, None)
            if key not in st.open:
                record = _record(condition, fired_ms=at(condition), now_ms=now_ms)
                st.open[key] = record
                out.append(record)
        for key, record in list(st.open.items()):
            if key in active or record.subject in held:
                if record.subject in held:
                    st.clear_since.pop(key, None)
                continue
            subject_now = at(record)
            since = st.clear_since.setdefault(key, subject_now)
            if subject_now - since >= hold_down_ms.get(record.rule, 0):
                resolved = record.model_copy(
                    update={"status": Status.RESOLVED, "resolved_ms": since, "changed_ms": now_ms}
                )
                del st.open[key]
                del st.clear_since[key]
                st.resolved[resolved.alert_id] = resolved
                out.append(resolved)
        for alert, record in list(st.resolved.items()):
            if record.resolved_ms is not None and now_ms - record.resolved_ms > keep_resolved_ms:
                del st.resolved[alert]
        return out

    def acknowledge(self, alert_id: str, *, by: str, now_ms: int) -> AlertRecord | None:
        """Acknowledge an open alert; None when it is unknown, resolved or already acknowledged."""
        for key, record in self.state.open.items():
            if record.alert_id == alert_id and record.status is Status.FIRING:
                acked = record.model_copy(
                    update={
                        "status": Status.ACKNOWLEDGED,
                        "acknowledged_ms": now_ms,
                        "acknowledged_by": by,
                        "changed_ms": now_ms,
                    }
                )
                self.state.open[key] = acked
                return acked
        return None

    def restore(self, records: Iterable[AlertRecord]) -> int:
        """Adopt alerts known elsewhere (the retained alert topics) after losing local state."""
        count = 0
        for record in records:
            if record.is_open:
                current = self.state.open.get(record.key)
                if current is None or current.fired_ms <= record.fired_ms:
                    self.state.open[record.key] = record
                    count += 1
            elif record.alert_id not in self.state.resolved:
                self.state.resolved[record.alert_id] = record
                count += 1
        return count


def _record(condition: Condition, *, fired_ms: int, now_ms: int) -> AlertRecord:
    return AlertRecord(
        alert_id=alert_id(condition),
        status=Status.FIRING,
        rule=condition.rule,
        severity=condition.severity,
        site=condition.site,
        workshop=condition.workshop,
        subject=condition.subject,
        subject_type=condition.subject_type,
        machine_type=condition.machine_type,
        detail=condition.detail,
        summary=condition.summary,
        started_ms=condition.started_ms,
        condition_ms=condition.condition_ms,
        fired_ms=fired_ms,
        value=condition.value,
        changed_ms=now_ms,
    )
