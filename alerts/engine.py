"""Rule evaluation over contract messages (pure: messages in, alert transitions out).

The engine's clock is the newest message timestamp it has seen, never the wall clock: gateways stamp
every message in (simulated) plant time and heartbeat every few seconds, so "DOWN for 20 minutes" means 20
minutes of plant time at any simulation speed-up, and a restarted worker replaying a backlog judges it by
the times in the messages. Observations are keyed by subject (machine or gateway); the whole state is a
pydantic model so the worker can store it with each commit.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from alerts.lifecycle import AlertRecord, Condition, Lifecycle, LifecycleState
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
from ftel.contract.models import (
    GatewayStatus,
    Heartbeat,
    MachineMeta,
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
    state: MachineState | None = None
    reason: str | None = None
    since_ms: int = 0
    last_event_ms: int = -1
    rated_speed: float | None = None
    service_interval_h: float | None = None
    stops: dict[str, list[int]] = {}  # reason -> start times of recent DOWN periods
    # Telemetry rules: rule name -> time of the first sample of the current run of samples over the limit.
    over_since: dict[str, int] = {}
    last_value: dict[str, float] = {}


class GatewayObs(BaseModel):
    site: str
    workshop: str
    gateway_id: str
    online: bool = True
    last_seen_ms: int = 0
    dead_since_ms: int | None = None  # when it was last heard from before its death message


class EngineState(BaseModel):
    clock_ms: int = 0
    machines: dict[str, MachineObs] = {}
    gateways: dict[str, GatewayObs] = {}
    lifecycle: LifecycleState = LifecycleState()


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
            dead_since = gateway.dead_since_ms
            if isinstance(message, Heartbeat) and dead_since is not None and message.ts > dead_since:
                gateway.online, gateway.dead_since_ms = True, None
        if isinstance(message, MachineMeta | StateChange | Telemetry | StateWindow):
            machine = self._machine(message)
            if isinstance(message, MachineMeta):
                machine.rated_speed = message.rated_speed
                machine.service_interval_h = message.service_interval_h
            elif isinstance(message, StateChange):
                self._state_change(machine, message)
            elif isinstance(message, Telemetry):
                self._telemetry(machine, message)
        st.clock_ms = max(st.clock_ms, message.ts)
        return self.evaluate()

    def acknowledge(self, alert_id: str, *, by: str) -> AlertRecord | None:
        return self.lifecycle.acknowledge(alert_id, by=by, now_ms=self.state.clock_ms)

    def _gateway(self, site: str, workshop: str, gateway_id: str) -> GatewayObs:
        key = _gateway_key(site, workshop, gateway_id)
        found = self.state.gateways.get(key)
        if found is None:
            found = self.state.gateways[key] = GatewayObs(site=site, workshop=workshop, gateway_id=gateway_id)
        return found

    def _machine(self, m: MachineMeta | StateChange | Telemetry | StateWindow) -> MachineObs:
        key = _machine_key(m.site, m.workshop, m.machine_id)
        found = self.state.machines.get(key)
        if found is None:
            found = self.state.machines[key] = MachineObs(
                site=m.site,
                workshop=m.workshop,
                machine_type=m.machine_type.value,
                machine_id=m.machine_id,
                gateway_id=m.gateway_id,
            )
        found.gateway_id = m.gateway_id
        return found

    def _status(self, gateway: GatewayObs, status: GatewayStatus) -> None:
        if status.online:
            # A birth: the gateway is back (its boot may be newer than anything we saw from it).
            gateway.online, gateway.dead_since_ms = True, None
            gateway.last_seen_ms = max(gateway.last_seen_ms, status.ts, self.state.clock_ms)
        elif gateway.online:
            # The last will carries the time it was set up (at the gateway's start), so the death is dated
            # by the last thing we heard from the gateway instead.
            gateway.online = False
            gateway.dead_since_ms = max(gateway.last_seen_ms, min(status.ts, self.state.clock_ms))
            # Its machines' states are unknown from now on; the gateway reports each afresh when it is back.
            for machine in self.state.machines.values():
                if (machine.site, machine.workshop, machine.gateway_id) == (
                    status.site,
                    status.workshop,
                    status.gateway_id,
                ):
                    machine.state, machine.reason = None, None
                    machine.over_since.clear()

    def _state_change(self, machine: MachineObs, change: StateChange) -> None:
        if change.ts <= machine.last_event_ms:
            return  # a redelivery (at-least-once) or an out-of-order old event
        machine.last_event_ms = change.ts
        machine.state, machine.reason, machine.since_ms = change.state, change.reason, change.ts
        if change.state is MachineState.DOWN and change.reason:
            machine.stops.setdefault(change.reason, []).append(change.ts)
        if change.state is not MachineState.RUNNING:
            for rule in self.config.rules:
                if isinstance(rule, SlowRunningRule):
                    machine.over_since.pop(rule.name, None)
        if change.state is MachineState.MAINTENANCE:
            for rule in self.config.rules:
                if isinstance(rule, ServiceOverdueRule):
                    machine.over_since.pop(rule.name, None)

    def _telemetry(self, machine: MachineObs, t: Telemetry) -> None:
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
        held = frozenset(m.machine_id for m in self.state.machines.values() if not self._gateway_of(m).online)
        return self.lifecycle.reconcile(
            now, self.conditions(), hold_down_ms=self._hold_down, held=held, keep_resolved_ms=self._keep_resolved_ms
        )

    def _gateway_of(self, machine: MachineObs) -> GatewayObs:
        return self._gateway(machine.site, machine.workshop, machine.gateway_id)

    def conditions(self) -> Iterator[Condition]:
        now = self.state.clock_ms
        for rule in self.config.rules:
            if isinstance(rule, GatewayOfflineRule):
                for gateway in self.state.gateways.values():
                    yield from _gateway_offline(rule, gateway, now)
                continue
            for machine in self.state.machines.values():
                if not rule.applies_to(machine.machine_type) or not self._gateway_of(machine).online:
                    continue
                yield from _machine_conditions(rule, machine, now)


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
        if m.state is MachineState.OFFLINE and m.last_event_ms >= 0:
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
