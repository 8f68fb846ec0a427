"""Stops without a machine reason, and the reasons people give them (pure; docs/operators.md).

A stop is one stretch of a machine in DOWN or IDLE, ``[start_ms, end_ms)``; it is known by its machine and its
start (the gateway's state change out of it carries ``prev_duration_ms``, so ``start = ts - prev_duration_ms``,
and an open stop's start is the current state's change time). It is **unexplained** when the controller gave no
reason that says why: DOWN with ``unknown_fault`` (an unknown fault code, or a stack-light tap's red), or an
IDLE with at least the idle limit of planned time (settings: ``operators.idle_unexplained_s``); a micro-stop
(a DOWN shorter than its machine type's ``micro_stop_s``) is counted apart and asked about by nobody.

An operator's **choice** names the stop by machine and start, and is stored as a point with exactly that
identity (``reason_point``), so a correction overwrites the earlier choice: a stop has at most one reason, and
its milliseconds are attributed to it once. ``latest_choices`` is the same rule for anything that holds every
choice (the simulator's ground truth).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ftel.contract.states import DOWN_REASONS, REASON_LABELS, UNKNOWN_FAULT, MachineState, MachineType
from ftel.errors import ConfigError
from ftel.plant.calendar import Calendar
from ftel.plant.stops import micro_stop_limits_ms
from ftel.plant.yamlfile import parse_yaml
from ftel.settings import Settings

Code = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]{0,63}$")]
STOP_STATES = (MachineState.DOWN, MachineState.IDLE)


class ReasonError(ConfigError):
    """A reason that is not on the machine's list, or a choice for a stop that is not an unexplained stop."""


class ReasonGroup(StrEnum):
    PLANNED = "planned"
    UNPLANNED = "unplanned"
    CHANGEOVER = "changeover"


class PlantReason(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: Code
    label: str = Field(min_length=1, max_length=80)
    group: ReasonGroup
    # Only for these machine types (empty: every type).
    machine_types: tuple[MachineType, ...] = ()


class ReasonsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reasons: tuple[PlantReason, ...]

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        seen: set[str] = set()
        machine_codes = {code for codes in DOWN_REASONS.values() for code in codes}
        for reason in self.reasons:
            if reason.code in seen:
                raise ValueError(f"the code {reason.code!r} is listed twice")
            if reason.code in machine_codes:
                raise ValueError(f"{reason.code!r} is a machine reason already; give the plant's code another name")
            seen.add(reason.code)
        return self


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    label: str
    group: ReasonGroup


# Without a reasons file: a few codes every knitting, carding and spinning workshop has.
DEFAULT_PLANT_REASONS: tuple[PlantReason, ...] = (
    PlantReason(code="no_yarn", label="No yarn / material", group=ReasonGroup.UNPLANNED),
    PlantReason(code="no_operator", label="No operator", group=ReasonGroup.UNPLANNED),
    PlantReason(code="waiting_maintenance", label="Waiting for maintenance", group=ReasonGroup.UNPLANNED),
    PlantReason(code="quality_check", label="Quality check", group=ReasonGroup.PLANNED),
    PlantReason(code="meeting", label="Meeting / training", group=ReasonGroup.PLANNED),
    PlantReason(code="style_change", label="Style / pattern change", group=ReasonGroup.CHANGEOVER),
)


@dataclass(frozen=True, slots=True)
class ReasonBook:
    """What an operator may choose for a machine type: the type's own fault list (unplanned; ``unknown_fault``
    is no answer) and the plant's codes, grouped."""

    plant: tuple[PlantReason, ...] = DEFAULT_PLANT_REASONS

    def choices(self, machine_type: MachineType) -> tuple[Reason, ...]:
        own = tuple(
            Reason(code, REASON_LABELS.get(code, code), ReasonGroup.UNPLANNED)
            for code in DOWN_REASONS[machine_type]
            if code != UNKNOWN_FAULT
        )
        plant = tuple(
            Reason(r.code, r.label, r.group)
            for r in self.plant
            if not r.machine_types or machine_type in r.machine_types
        )
        return own + plant

    def label(self, code: str) -> str:
        """A code's label, whatever machine type it is for (the code itself when no list has it)."""
        for machine_type in MachineType:
            for reason in self.choices(machine_type):
                if reason.code == code:
                    return reason.label
        return code

    def reason(self, machine_type: MachineType, code: str) -> Reason:
        for reason in self.choices(machine_type):
            if reason.code == code:
                return reason
        known = ", ".join(r.code for r in self.choices(machine_type))
        raise ReasonError(f"{code!r} is not a reason for a {machine_type.value} machine; choose one of: {known}")


def parse_reasons(text: str, *, source: str = "<reasons>") -> ReasonBook:
    model, _ = parse_yaml(text, ReasonsFile, source=source, what="a reasons file")
    return ReasonBook(model.reasons)


def load_reasons(path: Path | None) -> ReasonBook:
    """The plant's reasons file, or the default codes when there is none."""
    if path is None:
        return ReasonBook()
    try:
        text = path.read_text()
    except OSError as error:
        raise ReasonError(f"cannot read the reasons file {path}: {error}") from error
    return parse_reasons(text, source=str(path))


@dataclass(frozen=True, slots=True)
class MachineRef:
    site: str
    workshop: str
    machine_type: MachineType
    machine_id: str


@dataclass(frozen=True, slots=True)
class Stop:
    machine: MachineRef
    state: MachineState
    reason: str
    start_ms: int
    end_ms: int | None  # None: still stopped

    @property
    def key(self) -> tuple[str, int]:
        return self.machine.machine_id, self.start_ms

    def duration_ms(self, now_ms: int) -> int:
        return (self.end_ms if self.end_ms is not None else now_ms) - self.start_ms


@dataclass(frozen=True, slots=True)
class UnexplainedRule:
    """Which stops want a reason from a person (docs/boards.md, "unexplained stop")."""

    idle_limit_ms: int
    calendar: Calendar | None = None  # None: every moment planned
    # Per machine type: a DOWN shorter than this is a micro-stop, counted apart, and nobody is asked about it.
    micro_stop_ms: Mapping[str, int] = field(default_factory=dict)

    def ms(self, stop: Stop, now_ms: int) -> int | None:
        """The stop's time that wants a reason, or None when it needs none: a DOWN with ``unknown_fault`` (not a
        micro-stop) all of its time; an IDLE its planned time, when that is at least the idle limit (time outside
        shifts is its own category, never anyone's stop). An open stop is judged as it stands at ``now_ms``."""
        end = stop.end_ms if stop.end_ms is not None else now_ms
        if stop.state is MachineState.DOWN:
            if stop.reason not in ("", UNKNOWN_FAULT):
                return None
            length = end - stop.start_ms
            return length if length >= self.micro_stop_ms.get(stop.machine.machine_type.value, 0) else None
        if stop.state is MachineState.IDLE:
            planned = end - stop.start_ms if self.calendar is None else self.calendar.planned_ms(stop.start_ms, end)
            return planned if planned >= self.idle_limit_ms else None
        return None


def unexplained_rule(settings: Settings, calendar: Calendar | None) -> UnexplainedRule:
    """The settings' idle limit and micro-stop thresholds, on ``calendar``."""
    limit_ms = int(settings.operators.idle_unexplained_s * 1000)
    return UnexplainedRule(limit_ms, calendar, micro_stop_limits_ms(settings.micro_stop_s))


@dataclass(frozen=True, slots=True)
class Choice:
    """An operator's reason for one stop (machine and start), who gave it and when."""

    machine: MachineRef
    stop_start_ms: int
    stop_state: MachineState
    reason: str
    group: ReasonGroup
    who: str
    at_ms: int

    @property
    def key(self) -> tuple[str, int]:
        return self.machine.machine_id, self.stop_start_ms


def make_choice(book: ReasonBook, stop: Stop, code: str, *, who: str, at_ms: int, rule: UnexplainedRule) -> Choice:
    """A choice for ``stop``, refused when the stop needs no reason or the code is not on its machine's list."""
    if rule.ms(stop, at_ms) is None:
        raise ReasonError(
            f"the {stop.state.value} stop of {stop.machine.machine_id} from {stop.start_ms} has a machine reason "
            f"({stop.reason or 'none'}) or is too short to need one (a micro-stop, a short IDLE)"
        )
    reason = book.reason(stop.machine.machine_type, code)
    return Choice(stop.machine, stop.start_ms, stop.state, reason.code, reason.group, who, at_ms)


def latest_choices(choices: Iterable[Choice]) -> dict[tuple[str, int], Choice]:
    """Per stop, the choice that stands: the last one given (a correction replaces, as the stored point does)."""
    standing: dict[tuple[str, int], Choice] = {}
    for choice in sorted(choices, key=lambda c: c.at_ms):
        standing[choice.key] = choice
    return standing


@dataclass(frozen=True, slots=True)
class Tally:
    count: int = 0
    ms: int = 0

    def plus(self, ms: int) -> Tally:
        return Tally(self.count + 1, self.ms + ms)


@dataclass(frozen=True, slots=True)
class StopFigures:
    """Stops without a machine reason that ended in a period: how many and how long are still unexplained, how
    many were classified, and the classified ones per reason."""

    unexplained: Tally
    classified: Tally
    by_reason: Mapping[str, Tally]

    @property
    def unexplained_share(self) -> float | None:
        total = self.unexplained.ms + self.classified.ms
        return self.unexplained.ms / total if total else None


def stop_figures(
    stops: Iterable[Stop],
    choices: Mapping[tuple[str, int], str],
    *,
    rule: UnexplainedRule,
) -> StopFigures:
    """Finished stops only (``choices``: stop key → reason code); each stop counted once, whole."""
    unexplained, classified = Tally(), Tally()
    by_reason: dict[str, Tally] = {}
    for stop in stops:
        if stop.end_ms is None:
            continue
        ms = rule.ms(stop, stop.end_ms)
        if ms is None:
            continue
        code = choices.get(stop.key)
        if code is None:
            unexplained = unexplained.plus(ms)
        else:
            classified = classified.plus(ms)
            by_reason[code] = by_reason.get(code, Tally()).plus(ms)
    return StopFigures(unexplained, classified, dict(sorted(by_reason.items())))


def classified_downtime(
    down_ms_by_reason: Mapping[str, int],
    stops: Sequence[Stop],
    choices: Mapping[tuple[str, int], str],
    *,
    start_ms: int,
    end_ms: int,
) -> dict[str, int]:
    """Downtime per reason over ``[start_ms, end_ms)`` with each classified ``unknown_fault`` stop's time in the
    period moved to the operator's reason: the controller's reason where it gave one, the operator's where not."""
    out = dict(down_ms_by_reason)
    for stop in stops:
        code = choices.get(stop.key)
        if code is None or stop.state is not MachineState.DOWN or stop.reason not in ("", UNKNOWN_FAULT):
            continue
        stop_end = stop.end_ms if stop.end_ms is not None else end_ms
        inside = min(stop_end, end_ms) - max(stop.start_ms, start_ms)
        if inside <= 0:
            continue
        source = stop.reason or UNKNOWN_FAULT
        out[source] = out.get(source, 0) - inside
        out[code] = out.get(code, 0) + inside
    return {reason: ms for reason, ms in sorted(out.items()) if ms}
