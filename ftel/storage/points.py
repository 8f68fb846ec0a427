"""From contract messages to InfluxDB points (pure), by the schema in ftel/storage/schema.py."""

from __future__ import annotations

from ftel.contract.models import (
    GatewayStatus,
    Heartbeat,
    MachineMeta,
    Message,
    Rollup,
    StateChange,
    StateWindow,
    Telemetry,
)
from ftel.contract.states import STATE_ORDER, MachineState, state_field
from ftel.storage.lineproto import Point
from ftel.storage.schema import DEAD_LETTER_SLOTS, Measurement, Tag, resolution, state_fields


def machine_tags(message: MachineMeta | StateChange | StateWindow | Telemetry) -> dict[str, str]:
    return {
        "site": message.site,
        "workshop": message.workshop,
        "machine_type": message.machine_type.value,
        "machine_id": message.machine_id,
    }


def gateway_tags(message: GatewayStatus | Heartbeat) -> dict[str, str]:
    return {"site": message.site, "workshop": message.workshop, "gateway_id": message.gateway_id}


def to_points(message: Message) -> list[Point]:
    """The points of one message; they depend on nothing else, so a redelivery overwrites them."""
    if isinstance(message, StateChange):
        fields: dict[str, str | int | float | bool] = {
            **state_fields(message.state),
            "reason": message.reason or "",
            "prev_state": message.prev_state.value,
            "prev_reason": message.prev_reason or "",
            "prev_duration_ms": message.prev_duration_ms,
            "seq": message.seq,
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
        extra: dict[str, str | int | float | bool] = {"machines": message.machines}
        if message.machine_id is not None:
            tags[Tag.MACHINE_ID] = message.machine_id
            return _window_points(message, Measurement.MACHINE_HOURS, Measurement.MACHINE_HOURS_DOWNTIME, tags, extra)
        return _window_points(message, Measurement.ROLLUP_STATE_TIME, Measurement.ROLLUP_DOWNTIME, tags, extra)
    if isinstance(message, Telemetry):
        telemetry_fields: dict[str, str | int | float | bool] = {
            **state_fields(message.state),
            "speed": float(message.speed),
            "temperature": float(message.temperature),
            "units_total": message.units_total,
            "defects_total": message.defects_total,
            "run_ms_since_service": message.run_ms_since_service,
        }
        return [Point(Measurement.TELEMETRY, machine_tags(message), telemetry_fields, message.ts)]
    if isinstance(message, MachineMeta):
        meta_fields: dict[str, str | int | float | bool] = {
            "model": message.model,
            "line": message.line,
            "rated_speed": float(message.rated_speed),
            "speed_unit": message.speed_unit,
            "service_interval_h": float(message.service_interval_h),
        }
        return [Point(Measurement.MACHINE_INFO, machine_tags(message), meta_fields, message.ts)]
    if isinstance(message, GatewayStatus):
        if message.will:
            # Only a record: when the gateway died is judged from the stream (death_points, alert worker).
            will_fields: dict[str, str | int | float | bool] = {"boot_id": message.boot_id, "seq": message.seq}
            return [Point(Measurement.GATEWAY_WILL, gateway_tags(message), will_fields, message.ts)]
        if not message.online:
            return death_points(message, message.ts)
        return birth_points(message)
    heartbeat_fields: dict[str, str | int | float | bool] = {
        "boot_id": message.boot_id,
        "uptime_ms": message.uptime_ms,
        "machines": message.machines,
        "spool_depth": message.spool_depth,
        "spool_dropped": message.spool_dropped,
        "refused": sum(message.refused.values()),
        "seq": message.seq,
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
        "window_ms": window.window_ms,
        "observed_ms": sum(window.state_ms.values()),
        "units": window.units,
        "defects": window.defects,
        "partial": window.partial,
        **extra,
    }
    points = [Point(measurement, tags, fields, window.window_start)]
    for reason in sorted(set(window.down_ms_by_reason) | set(window.stops_by_reason)):
        reason_fields: dict[str, str | int | float | bool] = {
            "down_ms": window.down_ms_by_reason.get(reason, 0),
            "stops": window.stops_by_reason.get(reason, 0),
        }
        points.append(Point(downtime, {**tags, Tag.REASON: reason}, reason_fields, window.window_start))
    return points


def _status_point(status: GatewayStatus, *, online: bool, at_ms: int) -> Point:
    fields: dict[str, str | int | float | bool] = {
        "online": online,
        "boot_id": status.boot_id,
        "machines": len(status.machines),
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
            "reason": now.reason or "",
            "since_ms": now.since_ms,
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
            "topic": topic[:500],
            "reason": reason[:1000],
            "stage": stage[:100],
            "error_type": error_type[:100],
            "payload": payload[:keep_bytes].decode("utf-8", errors="replace"),
            "size": len(payload),
        },
        received_ms,
    )
