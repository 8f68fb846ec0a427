"""Rule evaluation over contract messages (pure: messages in, alert transitions out), incremental.

Time is read from the messages, never from the wall clock: gateways stamp every message in (simulated) plant
time and heartbeat every few seconds, so "DOWN for 20 minutes" means 20 minutes of plant time at any
simulation speed-up, and a restarted worker replaying a backlog judges it by the times in the messages.

* A machine is judged on its gateway's own time: the newest timestamp the engine has seen from that gateway.
  The gateway sends a machine's events in order, so by then the engine knows everything the machine did up
  to that moment, whatever other gateways have said meanwhile (one that runs ahead, or one that lags while it
  drains its spool, changes nothing about another's machines).
* The engine's clock (the newest timestamp from anyone) judges what only the rest of the world can tell: a
  gateway gone silent, and when an alert's status changed.
* A machine's state comes from its gateway's events and from each birth, which re-states every machine
  (first sight is not an event); a death makes them unknown until the next birth. When a gateway that vanished
  died is decided by the rule ingest writes it by (ftel/contract/liveness.py); ingest owns its OFFLINE points
  (ingest/deaths.py), so boards show them whether the alert worker runs or not.

Incremental: what a machine's rules say depends only on the machine and on its gateway's time and liveness,
and what a gateway's rule says only on the gateway and the engine's clock. So a message judges the subjects
it touches (its machine, its gateway; all of a gateway's machines when the gateway dies or comes back), and
every subject that waits for a moment (DOWN or OFFLINE too long, a run of telemetry over a limit, a stop
sliding out of the window, the end of a hold-down, a gateway's silence) waits on a heap of deadlines
(alerts/deadlines.py): a machine's on its gateway's clock, a gateway's on the engine's. A message that moves
a clock pops only what is due. Judging a subject again when nothing changed changes nothing, so the
transitions, their ids and their times are those of judging every subject at every message, which is what
``rescan=True`` does (the reference the tests and bench/alerts.py compare with).

Observations are keyed by subject (machine or gateway); the engine records which subjects and alerts
changed since ``take_changes``, so the worker stores only those (alerts/rows.py).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel

from alerts.deadlines import Deadlines
from alerts.lifecycle import NOTHING, AlertRecord, Condition, Lifecycle, LifecycleState, Outcome
from alerts.rules import (
    AlertConfig,
    GatewayOfflineRule,
    MachineDownRule,
    MachineIdleRule,
    MachineOfflineRule,
    OverheatRule,
    RepeatedStopsRule,
    Rule,
    ServiceOverdueRule,
    SlowRunningRule,
)
from ftel.contract.liveness import death_time_ms, is_stale
from ftel.contract.models import (
    GatewayStatus,
    Heartbeat,
    MachineMeta,
    MachineNow,
    Message,
    StateChange,
    StateWindow,
    Telemetry,
)
from ftel.contract.states import MachineState, MachineType
from ftel.contract.topics import GatewayKind, MachineKind, gateway_kind_filter, machine_kind_filter

MACHINE = "machine"
GATEWAY = "gateway"
# Subject keys (alerts.lifecycle.subject_key) begin with these; a resolved alert waiting to be forgotten too.
MACHINE_PREFIX = f"{MACHINE}:"
GATEWAY_PREFIX = f"{GATEWAY}:"
FORGET_PREFIX = "resolved:"
# The engine's clock on the heap of deadlines; a gateway's own time is named by its key.
ENGINE_CLOCK = ""

TelemetryRule = OverheatRule | SlowRunningRule | ServiceOverdueRule

# The kinds the rules read. A window, a roll-up or a job tells them nothing that the samples, events and
# heartbeats do not (a window only proves its gateway alive and moves its clock, which its heartbeat does every few
# seconds), so the worker subscribes to these alone: in a county's stream a third of the messages are windows.
READ_MACHINE_KINDS = (MachineKind.META, MachineKind.EVENT, MachineKind.TELEMETRY)
READ_GATEWAY_KINDS = (GatewayKind.STATUS, GatewayKind.HEARTBEAT)


def read_filters(site: str) -> list[str]:
    """The topic filters of the data the rules read, for every workshop of ``site`` (``+``: every site)."""
    return [machine_kind_filter(site, kind) for kind in READ_MACHINE_KINDS] + [
        gateway_kind_filter(site, kind) for kind in READ_GATEWAY_KINDS
    ]


class MachineObs(BaseModel):
    site: str
    workshop: str
    machine_type: str
    machine_id: str
    gateway_id: str
    state: MachineState | None = None  # None: unknown (not yet re-stated by a birth, or its gateway died)
    reason: str | None = None
    since_ms: int = 0
    last_event_ms: int = -1  # the newest state change taken (an older or equal one is a redelivery)
    known_ms: int = -1  # the state is known as of this time (a change, a birth, or a death that made it unknown)
    rated_speed: float | None = None
    service_interval_h: float | None = None
    stops: dict[str, list[int]] = {}  # reason -> start times of recent DOWN periods
    # Telemetry rules: rule name -> time of the first sample of the current run of samples over the limit.
    over_since: dict[str, int] = {}
    last_value: dict[str, float] = {}
    # The newest sample, judged again when the machine's meta arrives after it (the gateway sends its first
    # readings before the metas).
    last_sample: Telemetry | None = None


class GatewayObs(BaseModel):
    site: str
    workshop: str
    gateway_id: str
    online: bool = True
    last_seen_ms: int = 0  # silence: the engine clock when something last arrived from it
    last_message_ms: int = 0  # its own time: the newest timestamp of anything it sent (not its will)
    boot_id: int | None = None  # the newest boot it announced (births, heartbeats, deaths)
    dead_since_ms: int | None = None  # when it died (death_time_ms)


class EngineState(BaseModel):
    clock_ms: int = 0
    machines: dict[str, MachineObs] = {}
    gateways: dict[str, GatewayObs] = {}
    lifecycle: LifecycleState = LifecycleState()


def _key(site: str, workshop: str, ident: str) -> str:
    """A machine's or a gateway's key in the state: ``<site>/<workshop>/<id>``."""
    return f"{site}/{workshop}/{ident}"


def _minutes(ms: int) -> str:
    return f"{ms / 60_000:.1f} min"


def _earliest(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None or a <= b else b


@dataclass(frozen=True, slots=True)
class StateChanges:
    """Keys of what changed since the last ``Engine.take_changes`` (a key that is gone was deleted), each kind
    in the order the engine first saw them."""

    machines: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    open_alerts: tuple[str, ...] = ()  # condition keys
    resolved_alerts: tuple[str, ...] = ()  # alert ids


@dataclass(slots=True)
class _Transitions:
    """One message's transitions, reported as judging every subject would report them: raised alerts by rule
    (in the rules file's order), then by subject (in the order the engine first saw them); then resolved
    alerts in the order they opened."""

    fired: list[tuple[int, int, AlertRecord]] = field(default_factory=list)
    resolved: list[tuple[int, AlertRecord]] = field(default_factory=list)


class Engine:
    def __init__(self, config: AlertConfig, state: EngineState | None = None, *, rescan: bool = False) -> None:
        """``rescan``: judge every subject at every message instead of only those touched or due (the cost
        grows with the fleet; the reference for tests and benchmarks)."""
        self.config = config
        self.state = state or EngineState()
        self.lifecycle = Lifecycle(self.state.lifecycle)
        self.rescan = rescan
        self._hold_down = {r.name: config.hold_down_ms(r) for r in config.rules}
        self._keep_resolved_ms = int(config.worker.keep_resolved_h * 3600 * 1000)
        self._rule_order = {r.name: i for i, r in enumerate(config.rules)}
        self._gateway_rules = [r for r in config.rules if isinstance(r, GatewayOfflineRule)]
        machine_rules = [r for r in config.rules if not isinstance(r, GatewayOfflineRule)]
        self._machine_rules = {t.value: [r for r in machine_rules if r.applies_to(t.value)] for t in MachineType}
        self._telemetry_rules: dict[str, list[TelemetryRule]] = {
            t: [r for r in rules if isinstance(r, TelemetryRule)] for t, rules in self._machine_rules.items()
        }
        self._not_running = [r.name for r in config.rules if isinstance(r, SlowRunningRule)]
        self._maintained = [r.name for r in config.rules if isinstance(r, ServiceOverdueRule)]
        # Stop times are kept as long as the widest repeated-stops window needs them.
        self._stops_kept_ms = max(
            (int(r.window_minutes * 60_000) for r in config.rules if isinstance(r, RepeatedStopsRule)), default=0
        )
        self._deadlines = Deadlines()
        self._due: set[str] = set()  # subject keys to judge at the end of this message
        self.judged = 0  # subjects judged so far (what a message costs is about how many it judges)
        self._changed_machines: set[str] = set()
        self._changed_gateways: set[str] = set()
        self._fleet: dict[str, set[str]] = {}  # gateway key -> keys of its machines
        self._order: dict[str, int] = {}  # subject key -> place in the order the engine first saw it
        for key in self.state.gateways:
            self._order[GATEWAY_PREFIX + key] = len(self._order)
            self._fleet.setdefault(key, set())
        for key, machine in self.state.machines.items():
            self._order[MACHINE_PREFIX + key] = len(self._order)
            self._fleet.setdefault(_key(machine.site, machine.workshop, machine.gateway_id), set()).add(key)
        # The moments subjects wait for are not stored: after a restart every subject is judged at the first
        # message, and asks for its next moment again.
        self._due.update(self._order)
        self._due.update(self.lifecycle.open_subjects())
        for alert in self.state.lifecycle.resolved.values():
            self._forget_later(alert)

    @property
    def clock_ms(self) -> int:
        return self.state.clock_ms

    # -- input -------------------------------------------------------------------------------------------

    def observe(self, message: Message) -> list[AlertRecord]:
        """Take one contract message; return the alert transitions it causes (usually none)."""
        st = self.state
        gateway_key = _key(message.site, message.workshop, message.gateway_id)
        gateway = self._gateway(gateway_key, message.site, message.workshop, message.gateway_id)
        if isinstance(message, GatewayStatus):
            self._status(gateway_key, gateway, message)
        else:
            # Arrival is proof of life now, even for an old message (a gateway draining its spool, or one
            # whose clock runs a little behind the others): silence is judged on the engine's clock.
            gateway.last_seen_ms = max(gateway.last_seen_ms, message.ts, st.clock_ms)
            gateway.last_message_ms = max(gateway.last_message_ms, message.ts)
            if isinstance(message, Heartbeat):
                gateway.boot_id = max(gateway.boot_id or message.boot_id, message.boot_id)
                dead_since = gateway.dead_since_ms
                if dead_since is not None and message.ts > dead_since:
                    gateway.online, gateway.dead_since_ms = True, None
                    self._touch_fleet(gateway_key)
        self._touch_gateway(gateway_key)
        if isinstance(message, MachineMeta | StateChange | Telemetry):
            machine_key, machine = self._machine(message)
            if isinstance(message, MachineMeta):
                machine.rated_speed = message.rated_speed
                machine.service_interval_h = message.service_interval_h
                if machine.last_sample is not None:
                    self._telemetry(machine, machine.last_sample)
            elif isinstance(message, StateChange):
                self._state_change(machine, message)
            else:
                self._telemetry(machine, message)
            self._touch_machine(machine_key)
        elif isinstance(message, StateWindow):
            self._machine(message)  # nothing to judge: a window tells the rules nothing new
        st.clock_ms = max(st.clock_ms, message.ts)
        return self._settle(gateway_key, gateway.last_message_ms)

    def acknowledge(self, alert_id: str, *, by: str) -> AlertRecord | None:
        return self.lifecycle.acknowledge(alert_id, by=by, now_ms=self.state.clock_ms)

    def restore(self, records: Iterable[AlertRecord]) -> int:
        """Adopt alerts known elsewhere (the retained alert topics) after losing local state; the engine's
        clock starts from the newest of them, and their subjects are judged at the next message."""
        records = list(records)
        count = self.lifecycle.restore(records)
        for record in records:
            self.state.clock_ms = max(self.state.clock_ms, record.changed_ms)
            if record.is_open:
                self._due.add(record.subject_key)
            else:
                self._forget_later(record)
        return count

    def take_changes(self) -> StateChanges:
        """What changed since the last call (machines, gateways, alerts), for the worker's store. The clock is
        small and always stored."""
        open_alerts, resolved = self.lifecycle.take_changes()
        order = self._order
        changes = StateChanges(
            tuple(sorted(self._changed_machines, key=lambda k: order.get(MACHINE_PREFIX + k, len(order)))),
            tuple(sorted(self._changed_gateways, key=lambda k: order.get(GATEWAY_PREFIX + k, len(order)))),
            open_alerts,
            resolved,
        )
        self._changed_machines.clear()
        self._changed_gateways.clear()
        return changes

    def mark_all_changed(self) -> None:
        """Everything is to be stored again (a store written before it kept a row per subject)."""
        self._changed_machines.update(self.state.machines)
        self._changed_gateways.update(self.state.gateways)
        self.lifecycle.mark_all_changed()

    def waiting(self) -> int:
        """Subjects waiting for a moment on the heap of deadlines."""
        return len(self._deadlines)

    # -- observations ------------------------------------------------------------------------------------

    def _touch_gateway(self, key: str) -> None:
        self._due.add(GATEWAY_PREFIX + key)
        self._changed_gateways.add(key)

    def _touch_machine(self, key: str) -> None:
        self._due.add(MACHINE_PREFIX + key)
        self._changed_machines.add(key)

    def _touch_fleet(self, gateway_key: str) -> None:
        """Every machine of a gateway that died or came back: their alerts are held, or no longer."""
        for key in self._fleet.get(gateway_key, ()):
            self._touch_machine(key)

    def _gateway(self, key: str, site: str, workshop: str, gateway_id: str) -> GatewayObs:
        found = self.state.gateways.get(key)
        if found is None:
            found = self.state.gateways[key] = GatewayObs(site=site, workshop=workshop, gateway_id=gateway_id)
            self._order[GATEWAY_PREFIX + key] = len(self._order)
            self._fleet.setdefault(key, set())
        return found

    def _machine(self, m: MachineMeta | StateChange | Telemetry | StateWindow) -> tuple[str, MachineObs]:
        return self._machine_of(m.site, m.workshop, m.gateway_id, m.machine_type, m.machine_id)

    def _machine_of(
        self, site: str, workshop: str, gateway_id: str, machine_type: MachineType, machine_id: str
    ) -> tuple[str, MachineObs]:
        key = _key(site, workshop, machine_id)
        found = self.state.machines.get(key)
        if found is None:
            found = self.state.machines[key] = MachineObs(
                site=site,
                workshop=workshop,
                machine_type=machine_type.value,
                machine_id=machine_id,
                gateway_id=gateway_id,
            )
            self._order[MACHINE_PREFIX + key] = len(self._order)
            self._fleet.setdefault(_key(site, workshop, gateway_id), set()).add(key)
            self._touch_machine(key)
        elif found.gateway_id != gateway_id:
            # Moved to another gateway: judged on that one's time from now on.
            self._fleet.get(_key(site, workshop, found.gateway_id), set()).discard(key)
            self._fleet.setdefault(_key(site, workshop, gateway_id), set()).add(key)
            found.gateway_id = gateway_id
            self._touch_machine(key)
        return key, found

    def _status(self, key: str, gateway: GatewayObs, status: GatewayStatus) -> None:
        if status.online:
            self._birth(key, gateway, status)
        else:
            self._death(key, gateway, status)

    def _birth(self, key: str, gateway: GatewayObs, birth: GatewayStatus) -> None:
        gateway.last_seen_ms = max(gateway.last_seen_ms, birth.ts, self.state.clock_ms)
        gateway.last_message_ms = max(gateway.last_message_ms, birth.ts)
        if is_stale(birth, gateway.boot_id):
            return  # an earlier boot's birth, sent again from a spool: the gateway has moved on
        newer_boot = gateway.boot_id is None or birth.boot_id > gateway.boot_id
        gateway.boot_id = birth.boot_id
        dead_since = gateway.dead_since_ms
        if dead_since is not None:
            if not newer_boot and birth.ts <= dead_since:
                return  # a birth from before the death, sent again: the gateway is still gone
            gateway.online, gateway.dead_since_ms = True, None
            self._touch_fleet(key)
        for machine_id, now in birth.states.items():
            machine_key, machine = self._machine_of(
                birth.site, birth.workshop, birth.gateway_id, birth.machines[machine_id], machine_id
            )
            self._restate(machine, now, at_ms=birth.ts)
            self._touch_machine(machine_key)

    def _restate(self, machine: MachineObs, now: MachineNow, *, at_ms: int) -> None:
        """A birth says the machine is in ``now``, as of ``at_ms``; an event already newer than that wins."""
        if at_ms <= machine.known_ms:
            return
        machine.known_ms = at_ms
        if (machine.state, machine.reason) == (now.state, now.reason):
            # The same state goes on; the earlier start is the one to keep (a gateway that lost its
            # checkpoint first-sees the machine afresh).
            machine.since_ms = min(machine.since_ms, now.since_ms)
            return
        # Not a stop: the birth re-states a state that began before it (the event, if any, came before).
        self._enter(machine, now.state, now.reason, now.since_ms)

    def _death(self, key: str, gateway: GatewayObs, death: GatewayStatus) -> None:
        if is_stale(death, gateway.boot_id) or not gateway.online:
            return  # an earlier boot's death, or the gateway is already dead: nothing new
        at = death_time_ms(death, gateway.last_message_ms)
        if not death.will:
            gateway.last_message_ms = max(gateway.last_message_ms, death.ts)
        gateway.boot_id = max(gateway.boot_id or death.boot_id, death.boot_id)
        gateway.online, gateway.dead_since_ms = False, at
        # Its machines' states are unknown from then on; the gateway re-states each at its next birth.
        for machine_key in self._fleet.get(key, ()):
            machine = self.state.machines[machine_key]
            machine.state, machine.reason = None, None
            machine.known_ms = max(machine.known_ms, at)
            machine.over_since.clear()
            self._touch_machine(machine_key)

    def _state_change(self, machine: MachineObs, change: StateChange) -> None:
        if change.ts <= machine.last_event_ms:
            return  # a redelivery (at-least-once) or an out-of-order old event
        machine.last_event_ms = change.ts
        if change.state is MachineState.DOWN and change.reason and self._stops_kept_ms:
            machine.stops.setdefault(change.reason, []).append(change.ts)
        if change.ts < machine.known_ms:
            return  # a stop that happened, but a birth or a death since says more about the state now
        machine.known_ms = change.ts
        self._enter(machine, change.state, change.reason, change.ts)

    def _enter(self, machine: MachineObs, state: MachineState, reason: str | None, since_ms: int) -> None:
        machine.state, machine.reason, machine.since_ms = state, reason, since_ms
        if state is not MachineState.RUNNING:
            for name in self._not_running:
                machine.over_since.pop(name, None)
        if state is MachineState.MAINTENANCE:
            for name in self._maintained:
                machine.over_since.pop(name, None)

    def _telemetry(self, machine: MachineObs, t: Telemetry) -> None:
        if machine.last_sample is not None and t.ts < machine.last_sample.ts:
            return  # an older sample, redelivered: judging it again would undo what newer ones showed
        machine.last_sample = t
        for rule in self._telemetry_rules[machine.machine_type]:
            over: bool | None = None
            if isinstance(rule, OverheatRule):
                over, value = t.temperature > rule.limit_c, t.temperature
            elif isinstance(rule, SlowRunningRule):
                if machine.rated_speed:
                    value = 100.0 * t.speed / machine.rated_speed
                    over = t.state is MachineState.RUNNING and value < rule.percent_of_rated
            else:
                interval_h = rule.interval_h.get(MachineType(machine.machine_type), machine.service_interval_h)
                if interval_h:
                    value = t.run_ms_since_service / 3_600_000
                    over = value > interval_h * rule.factor
            if over is None:
                continue
            if over:
                machine.over_since.setdefault(rule.name, t.ts)
                machine.last_value[rule.name] = value
            else:
                machine.over_since.pop(rule.name, None)

    # -- judgement ---------------------------------------------------------------------------------------

    def _settle(self, gateway_key: str, gateway_ms: int) -> list[AlertRecord]:
        """Judge what this message touched and what came due on the clocks it moved."""
        due, self._due = self._due, set()
        due.update(self._deadlines.due(ENGINE_CLOCK, self.state.clock_ms))
        due.update(self._deadlines.due(gateway_key, gateway_ms))
        if self.rescan:
            due.update(self._order)
            due.update(self.lifecycle.open_subjects())
        self.judged += len(due)
        out = _Transitions()
        forget: list[str] = []
        for subject in due:
            if subject.startswith(MACHINE_PREFIX):
                self._judge_machine(subject, out)
            elif subject.startswith(GATEWAY_PREFIX):
                self._judge_gateway(subject, out)
            else:
                forget.append(subject[len(FORGET_PREFIX) :])
        if not out.fired and not out.resolved and not forget:
            return []
        out.fired.sort(key=lambda f: (f[0], f[1]))
        self.lifecycle.number_opened(record.key for *_, record in out.fired)
        out.resolved.sort(key=lambda r: r[0])
        for _, record in out.resolved:
            self._forget_later(record)
        for alert_id in forget:
            self._forget(alert_id)
        return [record for *_, record in out.fired] + [record for _, record in out.resolved]

    def _forget_later(self, record: AlertRecord) -> None:
        if record.resolved_ms is not None:
            self._deadlines.wake(
                FORGET_PREFIX + record.alert_id, ENGINE_CLOCK, record.resolved_ms + self._keep_resolved_ms + 1
            )

    def _forget(self, alert_id: str) -> None:
        forgotten = self.lifecycle.purge(alert_id, now_ms=self.state.clock_ms, keep_resolved_ms=self._keep_resolved_ms)
        record = self.state.lifecycle.resolved.get(alert_id)
        if not forgotten and record is not None:
            self._forget_later(record)  # resolved again since: later

    def _report(self, subject: str, outcome: Outcome, out: _Transitions) -> None:
        order = self._order.get(subject, len(self._order))
        for record in outcome.fired:
            out.fired.append((self._rule_order[record.rule], order, record))
        out.resolved.extend(outcome.resolved)

    def _judge_machine(self, subject: str, out: _Transitions) -> None:
        machine = self.state.machines.get(subject[len(MACHINE_PREFIX) :])
        conditions: list[Condition] = []
        next_ms: int | None = None
        if machine is None:  # an alert restored from elsewhere about a machine not heard of yet
            clock, now, held = ENGINE_CLOCK, self.state.clock_ms, False
        else:
            clock = _key(machine.site, machine.workshop, machine.gateway_id)
            gateway = self.state.gateways[clock]
            now, held = gateway.last_message_ms, not gateway.online
            if not held:
                next_ms = self._machine_conditions(subject, machine, now, conditions)
        outcome = self.lifecycle.reconcile(
            subject,
            conditions,
            now_ms=self.state.clock_ms,
            subject_now_ms=now,
            hold_down_ms=self._hold_down,
            held=held,
        )
        if outcome is not NOTHING:
            self._report(subject, outcome, out)
        self._wake(subject, clock, _earliest(next_ms, outcome.hold_down_ends_ms))

    def _judge_gateway(self, subject: str, out: _Transitions) -> None:
        gateway = self.state.gateways.get(subject[len(GATEWAY_PREFIX) :])
        now = self.state.clock_ms
        conditions: list[Condition] = []
        next_ms: int | None = None
        if gateway is not None:
            for rule in self._gateway_rules:
                next_ms = _earliest(next_ms, _gateway_offline(rule, gateway, now, conditions))
        outcome = self.lifecycle.reconcile(
            subject, conditions, now_ms=now, subject_now_ms=now, hold_down_ms=self._hold_down
        )
        if outcome is not NOTHING:
            self._report(subject, outcome, out)
        self._wake(subject, ENGINE_CLOCK, _earliest(next_ms, outcome.hold_down_ends_ms))

    def _wake(self, subject: str, clock: str, at_ms: int | None) -> None:
        if at_ms is None:
            self._deadlines.cancel(subject)
        else:
            self._deadlines.wake(subject, clock, at_ms)

    def _machine_conditions(self, subject: str, m: MachineObs, now: int, out: list[Condition]) -> int | None:
        """Append the conditions that hold for ``m`` at ``now`` (its gateway's time) to ``out``; return the
        next moment one of them may start or stop holding without news about the machine."""
        next_ms: int | None = None
        if m.stops:
            self._drop_old_stops(subject, m, now)
        for rule in self._machine_rules[m.machine_type]:
            if isinstance(rule, MachineDownRule | MachineIdleRule | MachineOfflineRule):
                if m.state is not _STATE_OF[type(rule)]:
                    continue
                at = self._time_in_state_due(rule, m)
                if at is None:
                    continue  # never, as far as the calendar looks: no planned time ahead
                if now < at:
                    next_ms = _earliest(next_ms, at)
                    continue
                what = f"DOWN ({m.reason})" if isinstance(rule, MachineDownRule) else m.state.value
                planned = " of planned time" if self._planned_only(rule) else ""
                text = f"{what} for more than {_minutes(rule.threshold_ms(m.reason))}{planned}"
                value = (now - m.since_ms) / 60_000
                out.append(_condition(rule, m, started=m.since_ms, at=at, value=value, summary=text))
            elif isinstance(rule, RepeatedStopsRule):
                next_ms = _earliest(next_ms, _repeated_stops(rule, m, now, out))
            else:
                since = m.over_since.get(rule.name)
                if since is None:
                    continue
                hold = 0 if isinstance(rule, ServiceOverdueRule) else int(rule.minutes * 60_000)
                if now < since + hold:
                    next_ms = _earliest(next_ms, since + hold)
                    continue
                value = m.last_value.get(rule.name, 0.0)
                if isinstance(rule, OverheatRule):
                    text = f"temperature above {rule.limit_c:g} °C for {_minutes(hold)} ({value:.1f} °C)"
                elif isinstance(rule, SlowRunningRule):
                    text = f"running at {value:.0f} % of rated speed for {_minutes(hold)}"
                else:
                    text = f"{value:.1f} run-hours since the last maintenance, service interval passed"
                out.append(_condition(rule, m, started=since, at=since + hold, value=value, summary=text))
        return next_ms

    def _time_in_state_due(
        self, rule: MachineDownRule | MachineIdleRule | MachineOfflineRule, m: MachineObs
    ) -> int | None:
        """When the machine will have been in its state for the rule's limit: counting only the calendar's planned
        time for DOWN and IDLE rules that say so (None: not within the calendar's horizon)."""
        limit = rule.threshold_ms(m.reason)
        if self.config.calendar is None or not self._planned_only(rule):
            return m.since_ms + limit
        return self.config.calendar.after_planned(m.since_ms, limit)

    def _planned_only(self, rule: MachineDownRule | MachineIdleRule | MachineOfflineRule) -> bool:
        """OFFLINE is about the link, not the plant's hours: it counts every moment."""
        return self.config.calendar is not None and not isinstance(rule, MachineOfflineRule) and rule.planned_time_only

    def _drop_old_stops(self, subject: str, m: MachineObs, now: int) -> None:
        """Forget stops older than the widest window (at the machine's gateway's time)."""
        oldest_kept = now - self._stops_kept_ms
        for reason, starts in list(m.stops.items()):
            if starts[0] > oldest_kept:
                continue
            del starts[: bisect_right(starts, oldest_kept)]
            if not starts:
                del m.stops[reason]
            self._changed_machines.add(subject[len(MACHINE_PREFIX) :])


_STATE_OF: dict[type, MachineState] = {
    MachineDownRule: MachineState.DOWN,
    MachineIdleRule: MachineState.IDLE,
    MachineOfflineRule: MachineState.OFFLINE,
}


def _condition(
    rule: Rule, machine: MachineObs, *, detail: str = "", started: int, at: int, value: float, summary: str
) -> Condition:
    return Condition(
        rule=rule.name,
        severity=rule.severity.value,
        site=machine.site,
        workshop=machine.workshop,
        subject=machine.machine_id,
        subject_type=MACHINE,
        machine_type=machine.machine_type,
        detail=detail,
        started_ms=started,
        condition_ms=at,
        value=value,
        summary=f"{machine.machine_id} ({machine.machine_type}, {machine.workshop}): {summary}",
    )


def _repeated_stops(rule: RepeatedStopsRule, m: MachineObs, now: int, out: list[Condition]) -> int | None:
    """Append a condition per reason with ``count`` or more stops in the trailing window; return when the
    first of them slides out of it."""
    window = int(rule.window_minutes * 60_000)
    next_ms: int | None = None
    for reason, starts in m.stops.items():
        if not rule.counts(reason):
            continue
        first = bisect_right(starts, now - window)  # the stops within the window (at or after now - window: out)
        within = len(starts) - first
        if within < rule.count:
            continue
        out.append(
            _condition(
                rule,
                m,
                detail=reason,
                started=starts[first],
                at=starts[first + rule.count - 1],
                value=float(within),
                summary=f"{within} stops for {reason} within {rule.window_minutes:g} min",
            )
        )
        next_ms = _earliest(next_ms, starts[-rule.count] + window)
    return next_ms


def _gateway_offline(rule: GatewayOfflineRule, g: GatewayObs, now: int, out: list[Condition]) -> int | None:
    """Append the condition if the gateway is gone at ``now`` (the engine's clock); else return when it will
    be, if nothing more is heard from it."""
    if g.dead_since_ms is not None:
        started, at, how = g.dead_since_ms, g.dead_since_ms + int(rule.after_death_s * 1000), "last will"
    elif g.last_seen_ms > 0:
        timeout = int(rule.heartbeat_timeout_s * 1000)
        started, at, how = g.last_seen_ms, g.last_seen_ms + timeout, "no heartbeat"
    else:
        return None
    if now < at:
        return at
    out.append(
        Condition(
            rule=rule.name,
            severity=rule.severity.value,
            site=g.site,
            workshop=g.workshop,
            subject=g.gateway_id,
            subject_type=GATEWAY,
            machine_type="",
            detail="",
            started_ms=started,
            condition_ms=at,
            value=(now - started) / 1000,
            summary=f"gateway {g.gateway_id} ({g.workshop}) offline ({how}) since {_minutes(now - started)} ago",
        )
    )
    return None
