"""From contract messages to InfluxDB points: the storage schema (docs/schema.md), in one place (pure).

Every field keeps one type forever (InfluxDB rejects a field whose type flips): durations, counts and sequence
numbers are integers, speeds and temperatures floats, states and reasons strings. A point's identity is its
measurement, tags and timestamp, so a redelivered message overwrites itself instead of counting twice.
"""

from __future__ import annotations

from ftel.contract.models import (
    GatewayStatus,
    Heartbeat,
    MachineMeta,
    Message,
    StateChange,
    StateWindow,
    Telemetry,
)
from ftel.contract.states import STATE_ORDER, MachineState, state_field
from ingest.lineproto import Point

STATE_CODES: dict[MachineState, int] = {state: index for index, state in enumerate(STATE_ORDER)}


class Measurement:
    MACHINE_STATE = "machine_state"
    STATE_TIME = "state_time"
    DOWNTIME = "downtime"
    TELEMETRY = "telemetry"
    MACHINE_INFO = "machine_info"
    GATEWAY_STATUS = "gateway_status"
    GATEWAY_HEARTBEAT = "gateway_heartbeat"
    INGEST_HEALTH = "ingest_health"
    DEAD_LETTER = "dead_letter"


def machine_tags(message: MachineMeta | StateChange | StateWindow | Telemetry) -> dict[str, str]:
    return {
        "site": message.site,
        "workshop": message.workshop,
        "machine_type": message.machine_type.value,
        "machine_id": message.machine_id,
    }


def gateway_tags(message: GatewayStatus | Heartbeat) -> dict[str, str]:
    return {"site": message.site, "workshop": message.workshop, "gateway_id": message.gateway_id}


def state_fields(state: MachineState) -> dict[str, str | int]:
    return {"state": state.value, "state_code": STATE_CODES[state]}


def to_points(message: Message, *, received_ms: int) -> list[Point]:
    """``received_ms`` stamps a gateway's death: a last will is composed at connect time, so the moment the
    broker delivers it is the best estimate of when the gateway died."""
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
        tags = machine_tags(message)
        window_fields: dict[str, str | int | float | bool] = {
            state_field(state): message.state_ms[state] for state in STATE_ORDER
        }
        window_fields |= {
            "window_ms": message.window_ms,
            "observed_ms": sum(message.state_ms.values()),
            "units": message.units,
            "defects": message.defects,
            "partial": message.partial,
        }
        points = [Point(Measurement.STATE_TIME, tags, window_fields, message.window_start)]
        for reason in sorted(set(message.down_ms_by_reason) | set(message.stops_by_reason)):
            points.append(
                Point(
                    Measurement.DOWNTIME,
                    {**tags, "reason": reason},
                    {
                        "down_ms": message.down_ms_by_reason.get(reason, 0),
                        "stops": message.stops_by_reason.get(reason, 0),
                    },
                    message.window_start,
                )
            )
        return points
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
        at = message.ts if message.online else max(message.ts, received_ms)
        status_fields: dict[str, str | int | float | bool] = {
            "online": message.online,
            "boot_id": message.boot_id,
            "machines": len(message.machines),
        }
        points = [Point(Measurement.GATEWAY_STATUS, gateway_tags(message), status_fields, at)]
        if not message.online:
            for machine_id, machine_type in sorted(message.machines.items()):
                tags = {
                    "site": message.site,
                    "workshop": message.workshop,
                    "machine_type": machine_type.value,
                    "machine_id": machine_id,
                }
                points.append(Point(Measurement.MACHINE_STATE, tags, state_fields(MachineState.OFFLINE), at))
        return points
    heartbeat_fields: dict[str, str | int | float | bool] = {
        "boot_id": message.boot_id,
        "uptime_ms": message.uptime_ms,
        "machines": message.machines,
        "spool_depth": message.spool_depth,
        "spool_dropped": message.spool_dropped,
        "seq": message.seq,
    }
    return [Point(Measurement.GATEWAY_HEARTBEAT, gateway_tags(message), heartbeat_fields, message.ts)]
