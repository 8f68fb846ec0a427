"""Typed alert rules and delivery options, loaded from YAML (default: alerts/rules.yaml, see docs/alerts.md).

Every duration here is in simulated (message) time: the alert engine's clock is the newest message timestamp.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alerts.errors import RulesError
from alerts.webhook_policy import check_url
from ftel.contract.states import ALL_REASONS, MachineType
from ftel.contract.topics import ID_PATTERN
from ftel.plant.calendar import Calendar

DEFAULT_RULES_PATH = Path(__file__).with_name("rules.yaml")

Id = Annotated[str, Field(pattern=ID_PATTERN)]
Minutes = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Id
    severity: Severity = Severity.WARNING
    description: str = ""
    # Empty: every machine type. Gateway rules ignore it.
    machine_types: tuple[MachineType, ...] = ()
    # None: the file's hold_down_s.
    hold_down_s: Seconds | None = None

    def applies_to(self, machine_type: str) -> bool:
        return not self.machine_types or machine_type in self.machine_types


class _TimeInStateRule(_Rule):
    # With a plant calendar (settings: calendar), count only its planned time: a machine stopped outside shifts
    # raises nothing, and one stopped at a shift's end is judged from the next shift's start (docs/alerts.md).
    planned_time_only: bool = True


class MachineDownRule(_TimeInStateRule):
    """A machine DOWN longer than ``minutes`` (per reason: ``reason_minutes``), one alert per DOWN period."""

    kind: Literal["machine_down"]
    minutes: Minutes
    reason_minutes: dict[str, Minutes] = {}

    @model_validator(mode="after")
    def _known_reasons(self) -> MachineDownRule:
        _check_reasons(self.reason_minutes)
        return self

    def threshold_ms(self, reason: str | None) -> int:
        return int(self.reason_minutes.get(reason or "", self.minutes) * 60_000)


class MachineIdleRule(_TimeInStateRule):
    """A machine IDLE (powered, not producing) longer than ``minutes`` of planned time: nobody fed it, or it has
    no order. Outside planned time IDLE is what a machine is expected to be, so it never alerts there."""

    kind: Literal["machine_idle"]
    minutes: Minutes

    def threshold_ms(self, reason: str | None) -> int:
        return int(self.minutes * 60_000)


class RepeatedStopsRule(_Rule):
    """``count`` or more DOWN periods with the same reason beginning within ``window_minutes``."""

    kind: Literal["repeated_stops"]
    count: Annotated[int, Field(ge=2)]
    window_minutes: Minutes
    reasons: tuple[str, ...] = ()  # empty: every reason

    @model_validator(mode="after")
    def _known_reasons(self) -> RepeatedStopsRule:
        _check_reasons(self.reasons)
        return self

    def counts(self, reason: str) -> bool:
        return not self.reasons or reason in self.reasons


class GatewayOfflineRule(_Rule):
    """A gateway gone: its last will (or a clean death) arrived, or nothing heard from it for a while."""

    kind: Literal["gateway_offline"]
    after_death_s: Seconds = 30.0
    heartbeat_timeout_s: Annotated[float, Field(gt=0)] = 45.0


class MachineOfflineRule(_Rule):
    """The gateway reports the machine itself OFFLINE (its gateway alive) for ``minutes``."""

    kind: Literal["machine_offline"]
    minutes: Minutes

    def threshold_ms(self, reason: str | None) -> int:
        return int(self.minutes * 60_000)


class SlowRunningRule(_Rule):
    """RUNNING, but every telemetry sample below ``percent_of_rated`` % of rated speed for ``minutes``."""

    kind: Literal["slow_running"]
    percent_of_rated: Annotated[float, Field(gt=0, lt=100)]
    minutes: Minutes


class ServiceOverdueRule(_Rule):
    """Run-hours since the last MAINTENANCE beyond ``factor`` times the machine's service interval (from its
    meta, or ``interval_h`` per machine type when given)."""

    kind: Literal["service_overdue"]
    factor: Annotated[float, Field(gt=0)] = 1.0
    interval_h: dict[MachineType, Minutes] = {}


class OverheatRule(_Rule):
    """Every telemetry sample above ``limit_c`` °C for ``minutes``."""

    kind: Literal["overheat"]
    limit_c: Annotated[float, Field(allow_inf_nan=False)]
    minutes: Minutes


Rule = Annotated[
    MachineDownRule
    | MachineIdleRule
    | RepeatedStopsRule
    | GatewayOfflineRule
    | MachineOfflineRule
    | SlowRunningRule
    | ServiceOverdueRule
    | OverheatRule,
    Field(discriminator="kind"),
]
TelemetryRule = SlowRunningRule | ServiceOverdueRule | OverheatRule


class WebhookTarget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Id
    url: str = Field(description="http or https; loopback, link-local and private hosts need allow_hosts")
    timeout_s: Annotated[float, Field(gt=0)] = 5.0
    retry_initial_s: Annotated[float, Field(gt=0)] = 1.0
    retry_max_s: Annotated[float, Field(gt=0)] = 300.0
    retry_exponential_base: Annotated[float, Field(ge=1)] = 2.0
    headers: dict[str, str] = {}
    allow_hosts: tuple[str, ...] = Field(
        (),
        description="hosts (names, addresses or networks) this webhook may reach although they are loopback, "
        "link-local or private; the worker's allow_hosts are added at load",
    )

    @model_validator(mode="after")
    def _allowed_url(self) -> WebhookTarget:
        check_url(self.name, self.url, self.allow_hosts)
        return self


class WorkerOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    group: Id = Field("alerts", description="shared-subscription group: the worker's own copy of the stream")
    client_id: Id | None = Field(
        None,
        description="MQTT client id (default ftel-alerts-<group>); keep it "
        "stable, the persistent session is bound to it",
    )
    state_dir: Path = Field(Path(".ftel/alerts"), description="sqlite store: engine snapshot and outbox")
    session_expiry_s: int = Field(7 * 24 * 3600, description="how long the broker queues for a stopped one")
    flush_interval_s: float = Field(0.2, description="commit state and ack MQTT at least this often")
    flush_max_messages: int = Field(500, description="or after this many messages")
    # Flow control in the worker itself, as ingest's: Mosquitto stops honouring Receive Maximum once
    # acknowledgements flow, so the worker stops reading the socket while this many wait for their commit.
    max_unacked: int = Field(5000, ge=1, description="messages held unacknowledged before the worker stops reading")
    rebuild_quiet_s: float = Field(0.5, description="retained-alert rebuild ends after this long without one")
    rebuild_max_s: float = Field(5.0, description="and at the latest after this long")
    reconnect_s: float = Field(1.0, gt=0, description="first wait before connecting to the broker again")
    reconnect_max_s: float = Field(10.0, gt=0, description="the wait doubles (with jitter) up to this")
    influx_retry_initial_s: float = 0.5
    influx_retry_max_s: float = 30.0
    keep_resolved_h: float = Field(24.0, description="resolved alerts stay listed (and retained) this long")
    allow_hosts: tuple[str, ...] = Field(
        (), description="internal hosts every webhook may reach (names, addresses or networks, e.g. 10.1.0.0/16)"
    )


class AlertConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    hold_down_s: Seconds = Field(
        60.0,
        description="a firing alert resolves only after its condition has "
        "stayed clear this long; if it comes back sooner the same alert goes on",
    )
    rules: tuple[Rule, ...]
    webhooks: tuple[WebhookTarget, ...] = ()
    worker: WorkerOptions = WorkerOptions()
    # The site's calendar (`ftel alerts run` puts the settings' calendar here): time-in-state rules count only
    # its planned time. None: every moment counts (the default calendar plans every moment anyway).
    calendar: Calendar | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> AlertConfig:
        names = [r.name for r in self.rules]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(repeated)}")
        return self

    @model_validator(mode="before")
    @classmethod
    def _worker_allows(cls, data: object) -> object:
        """Each webhook carries the worker's allow_hosts too (before it is checked), so its sender needs
        nothing else."""
        if not isinstance(data, dict):
            return data
        worker = data.get("worker")
        extra = worker.allow_hosts if isinstance(worker, WorkerOptions) else None
        if isinstance(worker, dict):
            extra = worker.get("allow_hosts")
        hooks = data.get("webhooks")
        if not extra or not isinstance(hooks, list | tuple):
            return data
        return {**data, "webhooks": [_allowing(hook, extra) for hook in hooks]}

    def hold_down_ms(self, rule: _Rule) -> int:
        return int((self.hold_down_s if rule.hold_down_s is None else rule.hold_down_s) * 1000)

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)


def _allowing(hook: object, extra: Iterable[str]) -> object:
    if isinstance(hook, WebhookTarget):
        hook = hook.model_dump()
    if isinstance(hook, dict):
        # Idempotent: a config validated again (the command line adds webhooks) does not grow the list.
        return {**hook, "allow_hosts": tuple(dict.fromkeys((*hook.get("allow_hosts", ()), *extra)))}
    return hook  # validation says what is wrong with it


def _check_reasons(reasons: Iterable[str]) -> None:
    unknown = [r for r in reasons if r not in ALL_REASONS]
    if unknown:
        raise ValueError(f"unknown reason codes {', '.join(unknown)} (known: {', '.join(ALL_REASONS)})")


def parse_config(data: object, *, source: str = "rules") -> AlertConfig:
    try:
        return AlertConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        count = error.error_count()
        raise RulesError(f"{source}: {where}: {first['msg']} ({count} problem(s))") from error


def load_config(path: Path | None = None) -> AlertConfig:
    path = path or DEFAULT_RULES_PATH
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise RulesError(f"cannot read rules file {path}: {error}") from error
    return parse_config(data, source=str(path))
