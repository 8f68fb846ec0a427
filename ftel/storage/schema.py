"""The storage schema (docs/schema.md): measurement names, tag keys and field names, in one place.

Every field keeps one type forever (InfluxDB rejects a field whose type flips): durations, counts and sequence
numbers are integers, speeds and temperatures floats, states and reasons strings. A point's identity is its
measurement, tags and timestamp, so a redelivered message overwrites itself instead of counting twice.
Boards, the report, the live view and the alert worker read these names from here.
"""

from __future__ import annotations

from ftel.contract.states import STATE_ORDER, MachineState, state_field

__all__ = [
    "PLANNED_INSIDE",
    "PLANNED_OUTSIDE",
    "STATE_CODES",
    "Field",
    "Measurement",
    "Tag",
    "machines_field",
    "resolution",
    "state_field",
    "state_fields",
]


class Measurement:
    MACHINE_STATE = "machine_state"
    STATE_TIME = "state_time"
    DOWNTIME = "downtime"
    TELEMETRY = "telemetry"
    MACHINE_INFO = "machine_info"
    GATEWAY_STATUS = "gateway_status"
    GATEWAY_WILL = "gateway_will"
    # What each ingest worker stored of each gateway (ftel/storage/seen.py): when a vanished gateway died.
    GATEWAY_SEEN = "gateway_seen"
    GATEWAY_HEARTBEAT = "gateway_heartbeat"
    INGEST_HEALTH = "ingest_health"
    DEAD_LETTER = "dead_letter"
    ALERTS = "alerts"
    # Per workshop and machine type, made by the gateway from the windows it sent (gateway/rollup.py).
    ROLLUP_STATE_TIME = "rollup_state_time"
    ROLLUP_DOWNTIME = "rollup_downtime"
    # Per machine and hour, from the same windows: per-machine questions over long ranges or large fleets.
    MACHINE_HOURS = "rollup_machine_time"
    MACHINE_HOURS_DOWNTIME = "rollup_machine_downtime"
    # Which style and order a machine is on from a moment, written by whoever sets it (ftel/plant/orders.py).
    MACHINE_JOB = "machine_job"
    # Made from the windows split at job changes (dashboards/orders_rollup.py): per machine, window and job; and
    # each order's progress as of a moment. The orders board reads them.
    JOB_TIME = "job_time"
    ORDER_STATUS = "order_status"
    # An operator's reason for a stop without a machine reason, stamped at the stop's start: one point per stop,
    # so a correction overwrites it (ftel/plant/reasons.py). The log keeps every choice, stamped when it was made.
    STOP_REASON = "stop_reason"
    STOP_REASON_LOG = "stop_reason_log"
    # Settled from the workshop roll-ups for the boards (dashboards/settle.py; a board cannot join state times
    # with the calendar, nor a stop with an operator's reason): the state times inside and outside the calendar's
    # planned time, and the downtime per attributed reason (the controller's, an operator's where it gave none).
    ROLLUP_PLANNED_TIME = "rollup_planned_time"
    ROLLUP_CLASSIFIED_DOWNTIME = "rollup_classified_downtime"
    # Settled too (dashboards/state_now.py): per workshop and machine type, how many machines were in each state
    # at the end of a whole minute (stamped at its last millisecond), from each machine's last machine_state point
    # by then. "Now" counts read it, not 60,000 machines' last points.
    ROLLUP_STATE_NOW = "rollup_state_now"


class Tag:
    SITE = "site"
    WORKSHOP = "workshop"
    MACHINE_TYPE = "machine_type"
    MACHINE_ID = "machine_id"
    GATEWAY_ID = "gateway_id"
    REASON = "reason"
    WORKER = "worker"
    # Dead letters received in the same millisecond by one worker differ in their slot, so none overwrites
    # another; the slot cycles through DEAD_LETTER_SLOTS values, which bounds the series it creates.
    SLOT = "slot"
    # Of a roll-up: its length, "1m" (the gateway's window) or "1h".
    RESOLUTION = "resolution"
    # Of an alert (docs/alerts.md): its rule, severity and the machine or gateway it is about.
    RULE = "rule"
    SEVERITY = "severity"
    SUBJECT = "subject"
    # Of job_time and order_status (in machine_job they are fields: a change's job is not a series of its own).
    STYLE = "style"
    ORDER = "order"
    # Of rollup_planned_time: PLANNED_INSIDE (the calendar's planned time) or PLANNED_OUTSIDE (outside shifts).
    PLANNED = "planned"


PLANNED_INSIDE = "inside"
PLANNED_OUTSIDE = "outside"


class Field:
    """Field names read back by boards, the report and the live view (the time in each state is
    ``state_field(state)``)."""

    STATE = "state"
    STATE_CODE = "state_code"
    REASON = "reason"
    PREV_STATE = "prev_state"
    PREV_REASON = "prev_reason"
    PREV_DURATION_MS = "prev_duration_ms"
    WINDOW_MS = "window_ms"
    OBSERVED_MS = "observed_ms"
    UNITS = "units"
    DEFECTS = "defects"
    # Of a roll-up: how many machines are in its sum.
    MACHINES = "machines"
    DOWN_MS = "down_ms"
    STOPS = "stops"
    SPEED = "speed"
    UNITS_TOTAL = "units_total"
    DEFECTS_TOTAL = "defects_total"
    RUN_MS_SINCE_SERVICE = "run_ms_since_service"
    RATED_SPEED = "rated_speed"
    SERVICE_INTERVAL_H = "service_interval_h"
    ONLINE = "online"
    SPOOL_DEPTH = "spool_depth"
    # ingest_health (cumulative counters and gauges of one worker)
    MESSAGES_IN = "messages_in"
    POINTS_WRITTEN = "points_written"
    LAST_BATCH_SIZE = "last_batch_size"
    MAX_BATCH_SIZE = "max_batch_size"
    RETRIES = "retries"
    DEAD_LETTERS = "dead_letters"
    LAG_MS = "lag_ms"
    # dead_letter
    TOPIC = "topic"
    SIZE = "size"
    # alerts
    STATUS = "status"
    STATUS_CODE = "status_code"
    SUMMARY = "summary"
    VALUE = "value"
    ALERT_ID = "alert_id"
    STARTED_MS = "started_ms"
    RESOLVED_MS = "resolved_ms"
    # dead_letter (beside TOPIC and SIZE)
    PAYLOAD = "payload"
    STAGE = "stage"
    ERROR_TYPE = "error_type"
    # the rest of what points carry
    BOOT_ID = "boot_id"
    LINE = "line"
    MODEL = "model"
    PARTIAL = "partial"
    REFUSED = "refused"
    SEQ = "seq"
    SINCE_MS = "since_ms"
    LAST_MS = "last_ms"
    SPEED_UNIT = "speed_unit"
    SPOOL_DROPPED = "spool_dropped"
    TEMPERATURE = "temperature"
    UPTIME_MS = "uptime_ms"
    # machine_job: the job, and what the machine's window had made before the change (ftel/plant/orders.py)
    STYLE = "style"
    ORDER = "order"
    UNITS_BEFORE = "units_before"
    DEFECTS_BEFORE = "defects_before"
    RUN_MS_BEFORE = "run_ms_before"
    SOURCE = "source"
    SET_BY = "set_by"
    PROGRAM = "program"
    # job_time and order_status
    RUN_MS = "run_ms"
    STANDARD_MS = "standard_ms"
    TARGET = "target"
    GOOD_TO_DATE = "good_to_date"
    PROGRESS = "progress"
    ESTIMATED_FINISH_MS = "estimated_finish_ms"
    # stop_reason and stop_reason_log (beside REASON and SET_BY)
    STOP_STATE = "stop_state"
    REASON_GROUP = "reason_group"
    SET_AT_MS = "set_at_ms"
    STOP_START_MS = "stop_start_ms"
    # rollup_classified_downtime: its DOWN time again when its reason is unknown_fault (nobody explained it),
    # else 0, so the share of downtime nobody explained is one statement's ratio
    UNEXPLAINED_MS = "unexplained_ms"


DEAD_LETTER_SLOTS = 1000
# The InfluxDB data source's fixed uid in Grafana: every board panel and every exported alert rule names it.
GRAFANA_DATASOURCE_UID = "ftel-influxdb"

STATE_CODES: dict[MachineState, int] = {state: index for index, state in enumerate(STATE_ORDER)}


def resolution(window_ms: int) -> str:
    """The resolution tag of a roll-up ``window_ms`` long: 1h, 1m, 30s…"""
    for unit, ms in (("h", 3_600_000), ("m", 60_000)):
        if window_ms % ms == 0:
            return f"{window_ms // ms}{unit}"
    return f"{window_ms // 1000}s"


def machines_field(state: MachineState) -> str:
    """The rollup_state_now field counting the machines in ``state``."""
    return f"{state.value.lower()}_machines"


def state_fields(state: MachineState) -> dict[str, str | int]:
    return {Field.STATE: state.value, Field.STATE_CODE: STATE_CODES[state]}
