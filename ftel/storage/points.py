"""From contract messages to InfluxDB points (pure), by the schema in ftel/storage/schema.py."""

from __future__ import annotations

from collections.abc import Mapping

from ftel.contract.models import (
    GatewayStatus,
    Heartbeat,
    MachineMeta,
    Message,
    ProgramChange,
    Rollup,
    StateChange,
    StateWindow,
    Telemetry,
)
from ftel.contract.states import STATE_ORDER, UNKNOWN_FAULT, MachineState, state_field
from ftel.plant.orders import Counts, Job, JobChange, OrderFigures, WindowCounts
from ftel.plant.reasons import Choice
from ftel.storage.lineproto import Point
from ftel.storage.schema import (
    DEAD_LETTER_SLOTS,
    PLANNED_INSIDE,
    PLANNED_OUTSIDE,
    Field,
    Measurement,
    Tag,
    machines_field,
    resolution,
    state_fields,
)


def machine_tags(message: MachineMeta | StateChange | StateWindow | Telemetry) -> dict[str, str]:
    return {
        Tag.SITE: message.site,
        Tag.WORKSHOP: message.workshop,
        Tag.MACHINE_TYPE: message.machine_type.value,
        Tag.MACHINE_ID: message.machine_id,
    }


def _type_tags(message: ProgramChange) -> dict[str, str]:
    return {"site": message.site, "workshop": message.workshop, "machine_type": message.machine_type.value}


def gateway_tags(message: GatewayStatus | Heartbeat) -> dict[str, str]:
    return {Tag.SITE: message.site, Tag.WORKSHOP: message.workshop, Tag.GATEWAY_ID: message.gateway_id}


def to_points(message: Message) -> list[Point]:
    """The points of one message; they depend on nothing else, so a redelivery overwrites them."""
    if isinstance(message, StateChange):
        fields: dict[str, str | int | float | bool] = {
            **state_fields(message.state),
            Field.REASON: message.reason or "",
            Field.PREV_STATE: message.prev_state.value,
            Field.PREV_REASON: message.prev_reason or "",
            Field.PREV_DURATION_MS: message.prev_duration_ms,
            Field.SEQ: message.seq,
        }
        return [Point(Measurement.MACHINE_STATE, machine_tags(message), fields, message.ts)]
    if isinstance(message, StateWindow):
        return _window_points(message, Measurement.STATE_TIME, Measurement.DOWNTIME, machine_tags(message), {})
    if isinstance(message, Rollup):
        tags = {
            Tag.SITE: message.site,
            Tag.WORKSHOP: message.workshop,
            Tag.MACHINE_TYPE: message.machine_type.value,
            Tag.RESOLUTION: resolution(message.window_ms),
        }
        extra: dict[str, str | int | float | bool] = {Field.MACHINES: message.machines}
        if message.machine_id is not None:
            tags[Tag.MACHINE_ID] = message.machine_id
            return _window_points(message, Measurement.MACHINE_HOURS, Measurement.MACHINE_HOURS_DOWNTIME, tags, extra)
        return _window_points(message, Measurement.ROLLUP_STATE_TIME, Measurement.ROLLUP_DOWNTIME, tags, extra)
    if isinstance(message, Telemetry):
        telemetry_fields: dict[str, str | int | float | bool] = {
            **state_fields(message.state),
            Field.SPEED: float(message.speed),
            Field.TEMPERATURE: float(message.temperature),
            Field.UNITS_TOTAL: message.units_total,
            Field.DEFECTS_TOTAL: message.defects_total,
            Field.RUN_MS_SINCE_SERVICE: message.run_ms_since_service,
        }
        return [Point(Measurement.TELEMETRY, machine_tags(message), telemetry_fields, message.ts)]
    if isinstance(message, ProgramChange):
        change = JobChange(
            message.machine_id,
            message.ts,
            Job(""),  # the style comes from the orders file at read time (ftel/plant/orders.py resolve_programs)
            before=Counts(message.units_before, message.defects_before, message.run_ms_before),
            source="controller",
            who=message.gateway_id,
            program=message.program,
        )
        return [job_point(change, **_type_tags(message))]
    if isinstance(message, MachineMeta):
        meta_fields: dict[str, str | int | float | bool] = {
            Field.MODEL: message.model,
            Field.LINE: message.line,
            Field.RATED_SPEED: float(message.rated_speed),
            Field.SPEED_UNIT: message.speed_unit,
            Field.SERVICE_INTERVAL_H: float(message.service_interval_h),
        }
        return [Point(Measurement.MACHINE_INFO, machine_tags(message), meta_fields, message.ts)]
    if isinstance(message, GatewayStatus):
        if message.will:
            # Only a record: when the gateway died is judged from the stream (death_points, alert worker).
            will_fields: dict[str, str | int | float | bool] = {Field.BOOT_ID: message.boot_id, Field.SEQ: message.seq}
            return [Point(Measurement.GATEWAY_WILL, gateway_tags(message), will_fields, message.ts)]
        if not message.online:
            return death_points(message, message.ts)
        return birth_points(message)
    heartbeat_fields: dict[str, str | int | float | bool] = {
        Field.BOOT_ID: message.boot_id,
        Field.UPTIME_MS: message.uptime_ms,
        Field.MACHINES: message.machines,
        Field.SPOOL_DEPTH: message.spool_depth,
        Field.SPOOL_DROPPED: message.spool_dropped,
        Field.REFUSED: sum(message.refused.values()),
        Field.SEQ: message.seq,
    }
    return [Point(Measurement.GATEWAY_HEARTBEAT, gateway_tags(message), heartbeat_fields, message.ts)]


def _window_points(
    window: StateWindow | Rollup,
    measurement: str,
    downtime: str,
    tags: dict[str, str],
    extra: dict[str, str | int | float | bool],
) -> list[Point]:
    """A window's time per state (and its downtime per reason): a machine's, or a workshop's roll-up."""
    fields: dict[str, str | int | float | bool] = {state_field(state): window.state_ms[state] for state in STATE_ORDER}
    fields |= {
        Field.WINDOW_MS: window.window_ms,
        Field.OBSERVED_MS: sum(window.state_ms.values()),
        Field.UNITS: window.units,
        Field.DEFECTS: window.defects,
        Field.PARTIAL: window.partial,
        **extra,
    }
    points = [Point(measurement, tags, fields, window.window_start)]
    for reason in sorted(set(window.down_ms_by_reason) | set(window.stops_by_reason)):
        reason_fields: dict[str, str | int | float | bool] = {
            Field.DOWN_MS: window.down_ms_by_reason.get(reason, 0),
            Field.STOPS: window.stops_by_reason.get(reason, 0),
        }
        points.append(Point(downtime, {**tags, Tag.REASON: reason}, reason_fields, window.window_start))
    return points


def _status_point(status: GatewayStatus, *, online: bool, at_ms: int) -> Point:
    fields: dict[str, str | int | float | bool] = {
        Field.ONLINE: online,
        Field.BOOT_ID: status.boot_id,
        Field.MACHINES: len(status.machines),
    }
    return Point(Measurement.GATEWAY_STATUS, gateway_tags(status), fields, at_ms)


def _machine_tags_of(status: GatewayStatus, machine_id: str) -> dict[str, str]:
    return {
        Tag.SITE: status.site,
        Tag.WORKSHOP: status.workshop,
        Tag.MACHINE_TYPE: status.machines[machine_id].value,
        Tag.MACHINE_ID: machine_id,
    }


def birth_points(birth: GatewayStatus) -> list[Point]:
    """The gateway is online, and each machine is in the state it re-states: "state now" is true again."""
    points = [_status_point(birth, online=True, at_ms=birth.ts)]
    for machine_id, now in sorted(birth.states.items()):
        fields: dict[str, str | int | float | bool] = {
            **state_fields(now.state),
            Field.REASON: now.reason or "",
            Field.SINCE_MS: now.since_ms,
        }
        points.append(Point(Measurement.MACHINE_STATE, _machine_tags_of(birth, machine_id), fields, birth.ts))
    return points


def death_points(death: GatewayStatus, at_ms: int) -> list[Point]:
    """The gateway is gone from ``at_ms`` (ftel/contract/liveness.py decides when), and so is what it saw of
    its machines: each one is OFFLINE from then until the gateway's next birth re-states it."""
    points = [_status_point(death, online=False, at_ms=at_ms)]
    for machine_id in sorted(death.machines):
        tags = _machine_tags_of(death, machine_id)
        points.append(Point(Measurement.MACHINE_STATE, tags, state_fields(MachineState.OFFLINE), at_ms))
    return points


def alert_point(
    *,
    site: str,
    workshop: str,
    rule: str,
    severity: str,
    subject: str,
    alert_id: str,
    status: str,
    status_code: int,
    summary: str,
    started_ms: int,
    resolved_ms: int | None,
    value: float,
    changed_ms: int,
) -> Point:
    """One transition of an alert (docs/alerts.md): the alert worker writes it, boards read it."""
    return Point(
        Measurement.ALERTS,
        {Tag.SITE: site, Tag.WORKSHOP: workshop, Tag.RULE: rule, Tag.SEVERITY: severity, Tag.SUBJECT: subject},
        {
            Field.ALERT_ID: alert_id,
            Field.STATUS: status,
            Field.STATUS_CODE: status_code,
            Field.SUMMARY: summary,
            Field.STARTED_MS: started_ms,
            Field.RESOLVED_MS: resolved_ms or 0,
            Field.VALUE: float(value),
        },
        changed_ms,
    )


def dead_letter_point(
    *,
    worker: str,
    slot: int,
    topic: str,
    payload: bytes,
    reason: str,
    stage: str,
    error_type: str,
    received_ms: int,
    keep_bytes: int,
) -> Point:
    """Safe for any text: string fields carry anything (cut to size), tags are the worker's own."""
    return Point(
        Measurement.DEAD_LETTER,
        {Tag.WORKER: worker, Tag.SLOT: str(slot % DEAD_LETTER_SLOTS)},
        {
            Field.TOPIC: topic[:500],
            Field.REASON: reason[:1000],
            Field.STAGE: stage[:100],
            Field.ERROR_TYPE: error_type[:100],
            Field.PAYLOAD: payload[:keep_bytes].decode("utf-8", errors="replace"),
            Field.SIZE: len(payload),
        },
        received_ms,
    )


def job_point(change: JobChange, *, site: str, workshop: str, machine_type: str) -> Point:
    """A machine's job (style and order) from ``change.at_ms``, with what its window had made before it: the
    simulator, the operator page and a controller reader write job changes this way (ftel/plant/orders.py)."""
    tags = {Tag.SITE: site, Tag.WORKSHOP: workshop, Tag.MACHINE_TYPE: machine_type, Tag.MACHINE_ID: change.machine_id}
    fields: dict[str, str | int | float | bool] = {
        Field.STYLE: change.job.style,
        Field.ORDER: change.job.order,
        Field.UNITS_BEFORE: change.before.units,
        Field.DEFECTS_BEFORE: change.before.defects,
        Field.RUN_MS_BEFORE: change.before.run_ms,
        Field.SOURCE: change.source,
        Field.SET_BY: change.who,
        Field.PROGRAM: change.program,
    }
    return Point(Measurement.MACHINE_JOB, tags, fields, change.at_ms)


def job_time_point(
    part: WindowCounts, *, site: str, workshop: str, machine_type: str, style: str, order: str, standard_s: float
) -> Point:
    """What one machine made for one job in (part of) one window: pieces, defects, RUNNING time, and the standard
    time of those pieces (0 when the style has none), so a board sums performance per style or order."""
    tags = {
        Tag.SITE: site,
        Tag.WORKSHOP: workshop,
        Tag.MACHINE_TYPE: machine_type,
        Tag.MACHINE_ID: part.machine_id,
        Tag.STYLE: style,
        Tag.ORDER: order,
    }
    fields: dict[str, str | int | float | bool] = {
        Field.UNITS: part.counts.units,
        Field.DEFECTS: part.counts.defects,
        Field.RUN_MS: part.counts.run_ms,
        Field.STANDARD_MS: float(standard_s * 1000 * part.counts.units),
    }
    return Point(Measurement.JOB_TIME, tags, fields, part.window_start)


def order_status_point(figures: OrderFigures, *, site: str) -> Point:
    """An order's progress as of ``figures.as_of_ms``: good pieces to date, target, and the estimated finish at
    the rate of the period it was computed over; what is not known (an order not in the orders file has no
    target, an order nothing good was made for in the period no finish) is left out, and reads as empty."""
    known = {
        Field.TARGET: figures.target,
        Field.PROGRESS: figures.progress,
        Field.ESTIMATED_FINISH_MS: figures.estimated_finish_ms,
    }
    fields: dict[str, str | int | float | bool] = {
        Field.GOOD_TO_DATE: figures.good_to_date,
        Field.MACHINES: figures.machines,
        **{name: value for name, value in known.items() if value is not None},
    }
    tags = {Tag.SITE: site, Tag.ORDER: figures.order, Tag.STYLE: figures.style}
    return Point(Measurement.ORDER_STATUS, tags, fields, figures.as_of_ms)


def reason_points(choice: Choice) -> list[Point]:
    """An operator's reason for a stop: the standing one, stamped at the stop's start (a correction overwrites it,
    so the stop's time goes to one reason), and the choice in the log, stamped when it was made."""
    machine = choice.machine
    tags = {
        Tag.SITE: machine.site,
        Tag.WORKSHOP: machine.workshop,
        Tag.MACHINE_TYPE: machine.machine_type.value,
        Tag.MACHINE_ID: machine.machine_id,
    }
    fields: dict[str, str | int | float | bool] = {
        Field.REASON: choice.reason,
        Field.REASON_GROUP: choice.group.value,
        Field.STOP_STATE: choice.stop_state.value,
        Field.SET_BY: choice.who,
        Field.SET_AT_MS: choice.at_ms,
        Field.STOP_START_MS: choice.stop_start_ms,
    }
    return [
        Point(Measurement.STOP_REASON, tags, fields, choice.stop_start_ms),
        Point(Measurement.STOP_REASON_LOG, tags, fields, choice.at_ms),
    ]


def planned_time_point(
    series: tuple[str, str, str], *, window_start: int, window_ms: int, inside: bool, fields: Mapping[str, int]
) -> Point:
    """A workshop's machine time of one machine type in one window (a minute or an hour), inside the calendar's
    planned time or outside it (``series``: site, workshop, machine type); ``fields`` as a state roll-up's."""
    site, workshop, machine_type = series
    tags = {
        Tag.SITE: site,
        Tag.WORKSHOP: workshop,
        Tag.MACHINE_TYPE: machine_type,
        Tag.RESOLUTION: resolution(window_ms),
        Tag.PLANNED: PLANNED_INSIDE if inside else PLANNED_OUTSIDE,
    }
    values: dict[str, str | int | float | bool] = {**fields}
    return Point(Measurement.ROLLUP_PLANNED_TIME, tags, values, window_start)


def classified_downtime_point(
    series: tuple[str, str, str], reason: str, *, window_start: int, window_ms: int, down_ms: int, stops: int
) -> Point:
    """A workshop's DOWN time and stops begun of one machine type in one window under one attributed reason."""
    site, workshop, machine_type = series
    tags = {
        Tag.SITE: site,
        Tag.WORKSHOP: workshop,
        Tag.MACHINE_TYPE: machine_type,
        Tag.RESOLUTION: resolution(window_ms),
        Tag.REASON: reason,
    }
    fields: dict[str, str | int | float | bool] = {
        Field.DOWN_MS: down_ms,
        Field.STOPS: stops,
        Field.UNEXPLAINED_MS: down_ms if reason == UNKNOWN_FAULT else 0,
    }
    return Point(Measurement.ROLLUP_CLASSIFIED_DOWNTIME, tags, fields, window_start)


def state_now_point(series: tuple[str, str, str], *, at_ms: int, counts: Mapping[MachineState, int]) -> Point:
    """How many machines of a workshop's machine type were in each state at ``at_ms`` (``series``: site, workshop,
    machine type); every state is written, zeros too, so the point says the whole of it."""
    site, workshop, machine_type = series
    tags = {Tag.SITE: site, Tag.WORKSHOP: workshop, Tag.MACHINE_TYPE: machine_type}
    fields: dict[str, str | int | float | bool] = {machines_field(s): counts.get(s, 0) for s in STATE_ORDER}
    fields[Field.MACHINES] = sum(counts.values())
    return Point(Measurement.ROLLUP_STATE_NOW, tags, fields, at_ms)
