"""An alert's life: firing → (acknowledged) → resolved, one alert per problem, with a hold-down (pure).

The engine says which conditions hold right now; the lifecycle turns that into transitions. A firing alert
resolves only after its condition has stayed clear for the rule's hold-down; if the same condition (rule,
subject, detail) comes back within it, the same alert simply goes on. Alert ids are a digest of the problem
(site, workshop, rule, subject, detail, start time), so a replay after a restart yields the same ids.

Firing, clearing and the hold-down are timed on the subject's own clock (for a machine: its gateway's time),
so they depend on what that subject's source said and not on how other sources' messages interleave with it;
``changed_ms``, the time a status was reached, is the engine's clock.

The engine judges one subject (a machine or a gateway) at a time, when something about it changed or one of
its moments came (alerts/engine.py), so the lifecycle keeps its open alerts by subject too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
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


def subject_key(subject_type: str, site: str, workshop: str, subject: str) -> str:
    """One key per subject: ``machine:<site>/<workshop>/<machine id>`` or ``gateway:…`` (ids hold neither
    ``:`` nor ``/``)."""
    return f"{subject_type}:{site}/{workshop}/{subject}"


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

    @property
    def subject_key(self) -> str:
        return subject_key(self.subject_type, self.site, self.workshop, self.subject)


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
    def subject_key(self) -> str:
        return subject_key(self.subject_type, self.site, self.workshop, self.subject)

    @property
    def event_id(self) -> str:
        """One per transition: receivers deduplicate on it (delivery is at least once)."""
        return f"{self.alert_id}:{self.status.value}"

    @property
    def is_open(self) -> bool:
        return self.status is not Status.RESOLVED


class LifecycleState(BaseModel):
    """Serializable: the worker stores it, one row per alert (alerts/rows.py)."""

    open: dict[str, AlertRecord] = {}  # condition key -> alert
    clear_since: dict[str, int] = {}  # condition key -> when its condition was last seen clearing
    resolved: dict[str, AlertRecord] = {}  # alert id -> recently resolved alert (kept for list and ack)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What judging one subject did: the alerts it raised (in the order of its conditions), those it resolved
    (each with its place among the open alerts), and the moment its hold-downs end, if any is running."""

    fired: tuple[AlertRecord, ...] = ()
    resolved: tuple[tuple[int, AlertRecord], ...] = ()
    hold_down_ends_ms: int | None = None


NOTHING = Outcome()


class Lifecycle:
    """The alerts of every subject; ``reconcile`` judges one subject at a time. Indexes by subject and the
    order in which alerts opened are derived from the state (rebuilt on load); what changed since the last
    ``take_changes`` is recorded for the worker's store."""

    def __init__(self, state: LifecycleState | None = None) -> None:
        self.state = state or LifecycleState()
        self._by_subject: dict[str, set[str]] = {}  # subject key -> condition keys of its open alerts
        # Condition key -> a running count in the order alerts opened (the order resolutions are reported in).
        self._opened: dict[str, int] = {}
        self._next_opened = 0
        self._changed_open: set[str] = set()
        self._changed_resolved: set[str] = set()
        for key, record in self.state.open.items():
            self._index(key, record)
            self._number(key)

    def alerts(self) -> list[AlertRecord]:
        return [*self.state.open.values(), *self.state.resolved.values()]

    def find(self, alert_id: str) -> AlertRecord | None:
        return next((a for a in self.alerts() if a.alert_id == alert_id), None)

    def open_subjects(self) -> list[str]:
        """Subject keys with an open alert."""
        return list(self._by_subject)

    def reconcile(
        self,
        subject: str,
        conditions: Sequence[Condition],
        *,
        now_ms: int,
        subject_now_ms: int,
        hold_down_ms: Mapping[str, int],
        held: bool = False,
    ) -> Outcome:
        """Transitions of one subject (``subject_key``), whose ``conditions`` hold at ``subject_now_ms``, its
        own time; ``now_ms`` is the engine's clock (``changed_ms``). ``held``: the subject's state is unknown
        right now (its gateway is gone): its alerts neither fire nor resolve."""
        keys = self._by_subject.get(subject)
        if not conditions and not keys:
            return NOTHING
        st = self.state
        fired: list[AlertRecord] = []
        active: set[str] = set()
        for condition in conditions:
            key = condition.key
            active.add(key)
            if st.clear_since.pop(key, None) is not None:
                self._changed_open.add(key)
            if key not in st.open:
                record = _record(condition, fired_ms=subject_now_ms, now_ms=now_ms)
                st.open[key] = record
                self._index(key, record)
                self._changed_open.add(key)
                fired.append(record)
        resolved: list[tuple[int, AlertRecord]] = []
        ends: int | None = None
        for key in list(self._by_subject.get(subject, ())):
            if key in active:
                continue
            if held:
                if st.clear_since.pop(key, None) is not None:
                    self._changed_open.add(key)
                continue
            record = st.open[key]
            since = st.clear_since.get(key)
            if since is None:
                since = st.clear_since[key] = subject_now_ms
                self._changed_open.add(key)
            hold = hold_down_ms.get(record.rule, 0)
            if subject_now_ms - since < hold:
                ends = since + hold if ends is None else min(ends, since + hold)
                continue
            done = record.model_copy(update={"status": Status.RESOLVED, "resolved_ms": since, "changed_ms": now_ms})
            resolved.append((self._opened[key], done))
            self._unindex(key, record)
            del st.open[key]
            del st.clear_since[key]
            st.resolved[done.alert_id] = done
            self._changed_open.add(key)
            self._changed_resolved.add(done.alert_id)
        return Outcome(tuple(fired), tuple(resolved), ends)

    def purge(self, alert_id: str, *, now_ms: int, keep_resolved_ms: int) -> bool:
        """Forget a resolved alert once it is older than ``keep_resolved_ms``; True if it was."""
        record = self.state.resolved.get(alert_id)
        if record is None or record.resolved_ms is None or now_ms - record.resolved_ms <= keep_resolved_ms:
            return False
        del self.state.resolved[alert_id]
        self._changed_resolved.add(alert_id)
        return True

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
                self._changed_open.add(key)
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
                    self._index(record.key, record)
                    self._number(record.key)
                    self._changed_open.add(record.key)
                    count += 1
            elif record.alert_id not in self.state.resolved:
                self.state.resolved[record.alert_id] = record
                self._changed_resolved.add(record.alert_id)
                count += 1
        return count

    def take_changes(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Condition keys of open alerts (in the order they opened) and ids of resolved alerts that changed, or
        went, since the last call."""
        opened = self._opened
        open_keys = tuple(sorted(self._changed_open, key=lambda k: opened.get(k, len(opened))))
        resolved = tuple(sorted(self._changed_resolved))
        self._changed_open, self._changed_resolved = set(), set()
        return open_keys, resolved

    def number_opened(self, keys: Iterable[str]) -> None:
        """Place alerts that have just opened in the order of open alerts, in the order given."""
        for key in keys:
            self._number(key)

    def mark_all_changed(self) -> None:
        self._changed_open.update(self.state.open)
        self._changed_resolved.update(self.state.resolved)

    def _number(self, key: str) -> None:
        if key not in self._opened:
            self._opened[key] = self._next_opened
            self._next_opened += 1

    def _index(self, key: str, record: AlertRecord) -> None:
        self._by_subject.setdefault(record.subject_key, set()).add(key)

    def _unindex(self, key: str, record: AlertRecord) -> None:
        keys = self._by_subject.get(record.subject_key)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_subject[record.subject_key]
        self._opened.pop(key, None)


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
