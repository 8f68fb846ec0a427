"""Rule evaluation over contract messages (pure: messages in, alert transitions out).

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
  died is decided here, once (ftel/contract/liveness.py), and handed out by ``take_deaths``.

Observations are keyed by subject (machine or gateway); the whole state is a pydantic model so the worker can
store it with each commit.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from alerts.lifecycle import AlertRecord, Condition, Lifecycle, LifecycleState, Subject
from alerts.rules import (
    AlertConfig,
    GatewayOfflineRule,
    MachineDownRule,
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
    # Deaths of vanished gateways (last wills) decided here and not yet taken by the worker, with their time.
    deaths: list[tuple[GatewayStatus, int]] = []


def _machine_key(site: str, workshop: str, machine_id: str) -> str:
    return f"{site}/{workshop}/{machine_id}"


def _gateway_key(site: str, workshop: str, gateway_id: str) -> str:
    return f"{site}/{workshop}/{gateway_id}"


def _minutes(ms: int) -> str:
    return f"{ms / 60_000:.1f} min"


class Engine:
    def __init__(self, config: AlertConfig, state: EngineState | None = None) -> None:
        self.config = config
        self.state = state or EngineState()
        self.lifecycle = Lifecycle(self.state.lifecycle)
        self._hold_down = {r.name: config.hold_down_ms(r) for r in config.rules}
        self._keep_resolved_ms = int(config.worker.keep_resolved_h * 3600 * 1000)

    @property
    def clock_ms(self) -> int:
        return self.state.clock_ms

    # -- input -------------------------------------------------------------------------------------------

    def observe(self, message: Message) -> list[AlertRecord]:
        """Take one contract message; return the alert transitions it causes (usually none)."""
        st = self.state
        gateway = self._gateway(message.site, message.workshop, message.gateway_id)
        if isinstance(message, GatewayStatus):
            self._status(gateway, message)
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
        if isinstance(message, MachineMeta | StateChange | Telemetry | StateWindow):
            machine = self._machine(message)
            if isinstance(message, MachineMeta):
                machine.rated_speed = message.rated_speed
                machine.service_interval_h = message.service_interval_h
                if machine.last_sample is not None:
                    self._telemetry(machine, machine.last_sample)
            elif isinstance(message, StateChange):
                self._state_change(machine, message)
            elif isinstance(message, Telemetry):
                self._telemetry(machine, message)
        st.clock_ms = max(st.clock_ms, message.ts)
        return self.evaluate()

    def acknowledge(self, alert_id: str, *, by: str) -> AlertRecord | None:
        return self.lifecycle.acknowledge(alert_id, by=by, now_ms=self.state.clock_ms)

    def take_deaths(self) -> list[tuple[GatewayStatus, int]]:
        """The last wills that made a gateway dead since the last call, each with the moment it died (for the
        worker to store with ftel.storage.points.death_points). A gateway's own death is not among them: ingest
        stores it as it comes; nor is a will that changed nothing (stale, or a redelivery to a dead gateway)."""
        deaths, self.state.deaths = self.state.deaths, []
        return deaths

    def _gateway(self, site: str, workshop: str, gateway_id: str) -> GatewayObs:
        key = _gateway_key(site, workshop, gateway_id)
        found = self.state.gateways.get(key)
        if found is None:
            found = self.state.gateways[key] = GatewayObs(site=site, workshop=workshop, gateway_id=gateway_id)
        return found

    def _machine(self, m: MachineMeta | StateChange | Telemetry | StateWindow) -> MachineObs:
        return self._machine_of(m.site, m.workshop, m.gateway_id, m.machine_type, m.machine_id)

    def _machine_of(
        self, site: str, workshop: str, gateway_id: str, machine_type: MachineType, machine_id: str
    ) -> MachineObs:
        key = _machine_key(site, workshop, machine_id)
        found = self.state.machines.get(key)
        if found is None:
            found = self.state.machines[key] = MachineObs(
                site=site,
                workshop=workshop,
                machine_type=machine_type.value,
                machine_id=machine_id,
                gateway_id=gateway_id,
            )
        found.gateway_id = gateway_id
        return found

    def _machines_of(self, gateway: GatewayObs) -> Iterator[MachineObs]:
        for machine in self.state.machines.values():
            if (machine.site, machine.workshop, machine.gateway_id) == (
                gateway.site,
                gateway.workshop,
                gateway.gateway_id,
            ):
                yield machine

    def _status(self, gateway: GatewayObs, status: GatewayStatus) -> None:
        if status.online:
            self._birth(gateway, status)
        else:
            self._death(gateway, status)

    def _birth(self, gateway: GatewayObs, birth: GatewayStatus) -> None:
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
        for machine_id, now in birth.states.items():
            machine = self._machine_of(
                birth.site, birth.workshop, birth.gateway_id, birth.machines[machine_id], machine_id
            )
            self._restate(machine, now, at_ms=birth.ts)

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

    def _death(self, gateway: GatewayObs, death: GatewayStatus) -> None:
        if is_stale(death, gateway.boot_id) or not gateway.online:
            return  # an earlier boot's death, or the gateway is already dead: nothing new
        at = death_time_ms(death, gateway.last_message_ms)
        if not death.will:
            gateway.last_message_ms = max(gateway.last_message_ms, death.ts)
        gateway.boot_id = max(gateway.boot_id or death.boot_id, death.boot_id)
        gateway.online, gateway.dead_since_ms = False, at
        # Its machines' states are unknown from then on; the gateway re-states each at its next birth.
        for machine in self._machines_of(gateway):
            machine.state, machine.reason = None, None
            machine.known_ms = max(machine.known_ms, at)
            machine.over_since.clear()
        if death.will:
            self.state.deaths.append((death, at))

    def _state_change(self, machine: MachineObs, change: StateChange) -> None:
        if change.ts <= machine.last_event_ms:
            return  # a redelivery (at-least-once) or an out-of-order old event
        machine.last_event_ms = change.ts
        if change.state is MachineState.DOWN and change.reason:
            machine.stops.setdefault(change.reason, []).append(change.ts)
        if change.ts < machine.known_ms:
            return  # a stop that happened, but a birth or a death since says more about the state now
        machine.known_ms = change.ts
        self._enter(machine, change.state, change.reason, change.ts)

    def _enter(self, machine: MachineObs, state: MachineState, reason: str | None, since_ms: int) -> None:
        machine.state, machine.reason, machine.since_ms = state, reason, since_ms
        if state is not MachineState.RUNNING:
            for rule in self.config.rules:
                if isinstance(rule, SlowRunningRule):
                    machine.over_since.pop(rule.name, None)
        if state is MachineState.MAINTENANCE:
            for rule in self.config.rules:
                if isinstance(rule, ServiceOverdueRule):
                    machine.over_since.pop(rule.name, None)

    def _telemetry(self, machine: MachineObs, t: Telemetry) -> None:
        if machine.last_sample is not None and t.ts < machine.last_sample.ts:
            return  # an older sample, redelivered: judging it again would undo what newer ones showed
        machine.last_sample = t
        for rule in self.config.rules:
            if not rule.applies_to(machine.machine_type):
                continue
            over: bool | None = None
            if isinstance(rule, OverheatRule):
                over, value = t.temperature > rule.limit_c, t.temperature
            elif isinstance(rule, SlowRunningRule) and machine.rated_speed:
                value = 100.0 * t.speed / machine.rated_speed
                over = t.state is MachineState.RUNNING and value < rule.percent_of_rated
            elif isinstance(rule, ServiceOverdueRule):
                machine_type = MachineType(machine.machine_type)
                interval_h = rule.interval_h.get(machine_type, machine.service_interval_h)
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

    # -- evaluation --------------------------------------------------------------------------------------

    def evaluate(self) -> list[AlertRecord]:
        now = self.state.clock_ms
        machines = self._with_gateways()
        held = frozenset(m.machine_id for m, gateway in machines if not gateway.online)
        return self.lifecycle.reconcile(
            now,
            self._conditions(machines),
            hold_down_ms=self._hold_down,
            held=held,
            keep_resolved_ms=self._keep_resolved_ms,
            clock=self.subject_clock,
        )

    def _gateway_of(self, machine: MachineObs) -> GatewayObs:
        return self._gateway(machine.site, machine.workshop, machine.gateway_id)

    def _with_gateways(self) -> list[tuple[MachineObs, GatewayObs]]:
        return [(m, self._gateway_of(m)) for m in self.state.machines.values()]

    def subject_clock(self, subject: Subject) -> int:
        """The time a subject is judged at: a machine's gateway's own time, else the engine's clock."""
        if subject.subject_type == "machine":
            machine = self.state.machines.get(_machine_key(subject.site, subject.workshop, subject.subject))
            if machine is not None:
                return self._gateway_of(machine).last_message_ms
        return self.state.clock_ms

    def conditions(self) -> Iterator[Condition]:
        """The conditions that hold now (each machine's on its gateway's time)."""
        return self._conditions(self._with_gateways())

    def _conditions(self, machines: list[tuple[MachineObs, GatewayObs]]) -> Iterator[Condition]:
        now = self.state.clock_ms
        for rule in self.config.rules:
            if isinstance(rule, GatewayOfflineRule):
                for gateway in self.state.gateways.values():
                    yield from _gateway_offline(rule, gateway, now)
                continue
            for machine, gateway in machines:
                if gateway.online and rule.applies_to(machine.machine_type):
                    yield from _machine_conditions(rule, machine, gateway.last_message_ms)


def _condition(
    rule: Rule, machine: MachineObs, *, detail: str = "", started: int, at: int, value: float, summary: str
) -> Condition:
    return Condition(
        rule=rule.name,
        severity=rule.severity.value,
        site=machine.site,
        workshop=machine.workshop,
        subject=machine.machine_id,
        subject_type="machine",
        machine_type=machine.machine_type,
        detail=detail,
        started_ms=started,
        condition_ms=at,
        value=value,
        summary=f"{machine.machine_id} ({machine.machine_type}, {machine.workshop}): {summary}",
    )


def _machine_conditions(rule: Rule, m: MachineObs, now: int) -> Iterator[Condition]:
    if isinstance(rule, MachineDownRule):
        if m.state is MachineState.DOWN:
            at = m.since_ms + rule.threshold_ms(m.reason)
            if now >= at:
                yield _condition(
                    rule,
                    m,
                    started=m.since_ms,
                    at=at,
                    value=(now - m.since_ms) / 60_000,
                    summary=f"DOWN ({m.reason}) for more than {_minutes(at - m.since_ms)}",
                )
    elif isinstance(rule, MachineOfflineRule):
        if m.state is MachineState.OFFLINE:
            at = m.since_ms + int(rule.minutes * 60_000)
            if now >= at:
                yield _condition(
                    rule,
                    m,
                    started=m.since_ms,
                    at=at,
                    value=(now - m.since_ms) / 60_000,
                    summary=f"OFFLINE for more than {_minutes(at - m.since_ms)}",
                )
    elif isinstance(rule, RepeatedStopsRule):
        window = int(rule.window_minutes * 60_000)
        for reason, starts in m.stops.items():
            starts[:] = [s for s in starts if s > now - window]
            if rule.counts(reason) and len(starts) >= rule.count:
                yield _condition(
                    rule,
                    m,
                    detail=reason,
                    started=starts[0],
                    at=starts[rule.count - 1],
                    value=float(len(starts)),
                    summary=f"{len(starts)} stops for {reason} within {rule.window_minutes:g} min",
                )
    elif isinstance(rule, OverheatRule | SlowRunningRule | ServiceOverdueRule):
        since = m.over_since.get(rule.name)
        if since is None:
            return
        hold = 0 if isinstance(rule, ServiceOverdueRule) else int(rule.minutes * 60_000)
        if now >= since + hold:
            value = m.last_value.get(rule.name, 0.0)
            if isinstance(rule, OverheatRule):
                text = f"temperature above {rule.limit_c:g} °C for {_minutes(hold)} ({value:.1f} °C)"
            elif isinstance(rule, SlowRunningRule):
                text = f"running at {value:.0f} % of rated speed for {_minutes(hold)}"
            else:
                text = f"{value:.1f} run-hours since the last maintenance, service interval passed"
            yield _condition(rule, m, started=since, at=since + hold, value=value, summary=text)


def _gateway_offline(rule: GatewayOfflineRule, g: GatewayObs, now: int) -> Iterator[Condition]:
    if g.dead_since_ms is not None:
        started, at, how = g.dead_since_ms, g.dead_since_ms + int(rule.after_death_s * 1000), "last will"
    else:
        timeout = int(rule.heartbeat_timeout_s * 1000)
        started, at, how = g.last_seen_ms, g.last_seen_ms + timeout, "no heartbeat"
    if now >= at and (g.dead_since_ms is not None or g.last_seen_ms > 0):
        yield Condition(
            rule=rule.name,
            severity=rule.severity.value,
            site=g.site,
            workshop=g.workshop,
            subject=g.gateway_id,
            subject_type="gateway",
            machine_type="",
            detail="",
            started_ms=started,
            condition_ms=at,
            value=(now - started) / 1000,
            summary=f"gateway {g.gateway_id} ({g.workshop}) offline ({how}) since {_minutes(now - started)} ago",
        )
