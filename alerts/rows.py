"""The alert engine's state as rows (pure): one per machine, per gateway and per alert, plus a small head.

The worker's store (alerts/store.py) keeps these rows and, at each commit, writes only the rows of what changed
since the last one (``Engine.take_changes``): a commit costs what the messages behind it touched, not the size
of the fleet. The head (the engine's clock) is written at every commit; it
reads as an ``EngineState`` with nothing else in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel

from alerts.engine import EngineState, GatewayObs, MachineObs, StateChanges
from alerts.lifecycle import AlertRecord

MACHINE_ROW = "machine"
GATEWAY_ROW = "gateway"
OPEN_ROW = "open"  # keyed by condition key
RESOLVED_ROW = "resolved"  # keyed by alert id
HEAD_FIELDS = frozenset({"clock_ms"})


class OpenAlert(BaseModel):
    """An open alert and, while its condition is clear, since when (the hold-down runs from then)."""

    record: AlertRecord
    clear_since_ms: int | None = None


# (kind, key, body) to write; (kind, key) to delete.
Row = tuple[str, str, str]
RowKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Rows:
    head: str
    upserts: list[Row]
    deletes: list[RowKey]


def head(state: EngineState) -> str:
    return state.model_dump_json(include=set(HEAD_FIELDS))


def changed_rows(state: EngineState, changes: StateChanges) -> Rows:
    """The rows of what ``changes`` names: written if it is still there, deleted if it is gone."""
    upserts: list[Row] = []
    deletes: list[RowKey] = []

    def put(kind: str, key: str, model: BaseModel | None) -> None:
        if model is None:
            deletes.append((kind, key))
        else:
            upserts.append((kind, key, model.model_dump_json()))

    for key in changes.machines:
        put(MACHINE_ROW, key, state.machines.get(key))
    for key in changes.gateways:
        put(GATEWAY_ROW, key, state.gateways.get(key))
    lifecycle = state.lifecycle
    for key in changes.open_alerts:
        record = lifecycle.open.get(key)
        put(
            OPEN_ROW,
            key,
            None if record is None else OpenAlert(record=record, clear_since_ms=lifecycle.clear_since.get(key)),
        )
    for alert_id in changes.resolved_alerts:
        put(RESOLVED_ROW, alert_id, lifecycle.resolved.get(alert_id))
    return Rows(head(state), upserts, deletes)


def all_rows(state: EngineState) -> Rows:
    """Every row of ``state``."""
    lifecycle = state.lifecycle
    changes = StateChanges(
        tuple(state.machines), tuple(state.gateways), tuple(lifecycle.open), tuple(lifecycle.resolved)
    )
    return changed_rows(state, changes)


def state_from_rows(head_json: str, rows: Iterable[Row]) -> EngineState:
    """The state the head and the rows (in the order they were first written) describe. A head written before
    the store kept rows holds the whole state; rows, if any, come on top of it."""
    state = EngineState.model_validate_json(head_json)
    lifecycle = state.lifecycle
    for kind, key, body in rows:
        if kind == MACHINE_ROW:
            state.machines[key] = MachineObs.model_validate_json(body)
        elif kind == GATEWAY_ROW:
            state.gateways[key] = GatewayObs.model_validate_json(body)
        elif kind == OPEN_ROW:
            alert = OpenAlert.model_validate_json(body)
            lifecycle.open[key] = alert.record
            if alert.clear_since_ms is not None:
                lifecycle.clear_since[key] = alert.clear_since_ms
        elif kind == RESOLVED_ROW:
            lifecycle.resolved[key] = AlertRecord.model_validate_json(body)
    return state
