"""Stops and people's reasons read back from InfluxDB (ftel/plant/reasons.py says what they mean).

A finished stop is the state change that ended it (``prev_state``, ``prev_reason``, ``prev_duration_ms``, stamped
at its end); an open one is a machine's latest state when that is DOWN or IDLE (its start: the change's time, or
``since_ms`` where a gateway's birth re-stated it). A reason is the ``stop_reason`` point at the stop's start.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ftel.contract.states import MachineState, MachineType
from ftel.plant.reasons import STOP_STATES, MachineRef, Stop
from ftel.storage.query import InfluxQuery
from ftel.storage.schema import Field, Measurement, Tag

# An open stop is looked for among states that changed at most this long ago (a machine stopped longer than
# this without a birth re-stating it is not listed as stopped).
OPEN_STOP_LOOKBACK_MS = 7 * 24 * 3_600_000
_MACHINE_TAGS = (Tag.WORKSHOP, Tag.MACHINE_TYPE, Tag.MACHINE_ID)


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _where(site: str, workshops: Iterable[str], start_ms: int, end_ms: int) -> str:
    any_workshop = " OR ".join(f"{_ident(Tag.WORKSHOP)} = {_text(w)}" for w in workshops) or "false"
    return f"time >= {start_ms}ms AND time < {end_ms}ms AND {_ident(Tag.SITE)} = {_text(site)} AND ({any_workshop})"


def _group() -> str:
    return ", ".join(_ident(t) for t in _MACHINE_TAGS)


def _machine(site: str, row: dict[str, Any]) -> MachineRef:
    return MachineRef(site, row[Tag.WORKSHOP], MachineType(row[Tag.MACHINE_TYPE]), row[Tag.MACHINE_ID])


def finished_stops(client: InfluxQuery, site: str, workshops: Iterable[str], start_ms: int, end_ms: int) -> list[Stop]:
    """DOWN and IDLE stops that ended in ``[start_ms, end_ms)``, each whole."""
    states = " OR ".join(f"{_ident(Field.PREV_STATE)} = {_text(s.value)}" for s in STOP_STATES)
    rows = client.rows(
        f"SELECT {_ident(Field.PREV_STATE)}, {_ident(Field.PREV_REASON)}, {_ident(Field.PREV_DURATION_MS)} "
        f"FROM {_ident(Measurement.MACHINE_STATE)} WHERE {_where(site, workshops, start_ms, end_ms)} AND ({states}) "
        f"GROUP BY {_group()}"
    )
    return [
        Stop(
            _machine(site, row),
            MachineState(row[Field.PREV_STATE]),
            row[Field.PREV_REASON] or "",
            int(row["time"]) - int(row[Field.PREV_DURATION_MS]),
            int(row["time"]),
        )
        for row in rows
        if row[Field.PREV_DURATION_MS] is not None
    ]


def latest_states(client: InfluxQuery, site: str, workshops: Iterable[str], now_ms: int) -> list[Stop]:
    """Each machine's state now, from when (whatever the state: a "stop" of RUNNING is just where it stands)."""
    rows = client.rows(
        f"SELECT {_ident(Field.STATE)}, {_ident(Field.REASON)}, {_ident(Field.SINCE_MS)} "
        f"FROM {_ident(Measurement.MACHINE_STATE)} "
        f"WHERE {_where(site, workshops, now_ms - OPEN_STOP_LOOKBACK_MS, now_ms + 1)} "
        f"GROUP BY {_group()} ORDER BY time DESC LIMIT 1"
    )
    return [
        Stop(
            _machine(site, row),
            MachineState(row[Field.STATE]),
            row[Field.REASON] or "",
            int(row[Field.SINCE_MS] or row["time"]),
            None,
        )
        for row in rows
    ]


def open_stops(client: InfluxQuery, site: str, workshops: Iterable[str], now_ms: int) -> list[Stop]:
    """Machines DOWN or IDLE now, from when."""
    return [s for s in latest_states(client, site, workshops, now_ms) if s.state in STOP_STATES]


def stop_reasons(
    client: InfluxQuery, site: str, workshops: Iterable[str], start_ms: int, end_ms: int
) -> dict[tuple[str, int], dict[str, Any]]:
    """The standing reason of each stop that started in ``[start_ms, end_ms)``: its fields by (machine, start)."""
    fields = (Field.REASON, Field.REASON_GROUP, Field.SET_BY, Field.SET_AT_MS)
    rows = client.rows(
        f"SELECT {', '.join(_ident(f) for f in fields)} FROM {_ident(Measurement.STOP_REASON)} "
        f"WHERE {_where(site, workshops, start_ms, end_ms)} GROUP BY {_group()}"
    )
    return {(row[Tag.MACHINE_ID], int(row["time"])): row for row in rows}
