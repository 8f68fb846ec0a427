"""The live terminal view of `ftel run`: read back from InfluxDB every few seconds and drawn with rich."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ftel.contract.states import REASON_LABELS, STATE_COLOURS, STATE_ORDER, MachineState, state_field
from ftel.storage.query import InfluxQuery, QueryError
from ftel.storage.schema import Field, Measurement, Tag

UTILISATION_WINDOW_MIN = 30


@dataclass(slots=True)
class LiveSnapshot:
    sim_now_ms: int
    states: dict[str, dict[MachineState, int]] = field(default_factory=dict)  # workshop → state → machines
    utilisation: dict[str, float] = field(default_factory=dict)  # workshop → 0..1
    stops: list[tuple[str, int, float]] = field(default_factory=list)  # reason, stops, minutes
    messages_in: int = 0
    points_written: int = 0
    dead_letters: int = 0
    error: str | None = None


def read_snapshot(query: InfluxQuery, sim_now_ms: int) -> LiveSnapshot:
    snap = LiveSnapshot(sim_now_ms)
    since = sim_now_ms - UTILISATION_WINDOW_MIN * 60_000
    try:
        for row in query.rows(
            f'SELECT last("{Field.STATE}") AS state FROM "{Measurement.MACHINE_STATE}" '
            f'GROUP BY "{Tag.WORKSHOP}", "{Tag.MACHINE_ID}"'
        ):
            per = snap.states.setdefault(row[Tag.WORKSHOP], dict.fromkeys(STATE_ORDER, 0))
            per[MachineState(row["state"])] += 1
        running, offline = state_field(MachineState.RUNNING), state_field(MachineState.OFFLINE)
        for row in query.rows(
            f'SELECT sum("{running}") AS run, sum("{Field.OBSERVED_MS}") AS seen, sum("{offline}") AS off '
            f'FROM "{Measurement.STATE_TIME}" WHERE time >= {since}ms GROUP BY "{Tag.WORKSHOP}"'
        ):
            known = (row["seen"] or 0) - (row["off"] or 0)
            snap.utilisation[row[Tag.WORKSHOP]] = (row["run"] or 0) / known if known else 0.0
        rows = query.rows(
            f'SELECT sum("{Field.STOPS}") AS stops, sum("{Field.DOWN_MS}") AS down FROM "{Measurement.DOWNTIME}" '
            f'WHERE time >= {since}ms GROUP BY "{Tag.REASON}"'
        )
        snap.stops = sorted(
            ((r[Tag.REASON], int(r["stops"] or 0), (r["down"] or 0) / 60_000) for r in rows),
            key=lambda r: -r[2],
        )
        for row in query.rows(
            f'SELECT last("{Field.MESSAGES_IN}") AS m, last("{Field.POINTS_WRITTEN}") AS p, '
            f'last("{Field.DEAD_LETTERS}") AS d FROM "{Measurement.INGEST_HEALTH}" WHERE time > now() - 1h '
            f'GROUP BY "{Tag.WORKER}"'
        ):
            snap.messages_in += int(row["m"] or 0)
            snap.points_written += int(row["p"] or 0)
            snap.dead_letters += int(row["d"] or 0)
    except QueryError as error:
        snap.error = str(error)
    return snap


def _state_cell(state: MachineState, count: int) -> Text:
    return Text(f"{count:>3}", style=f"bold {STATE_COLOURS[state]}" if count else "dim")


def render(snap: LiveSnapshot, previous: LiveSnapshot | None, interval_s: float, header: str) -> Group:
    states = Table(title="Machines by state now", expand=True)
    states.add_column("workshop")
    for state in STATE_ORDER:
        states.add_column(Text(state.value, style=STATE_COLOURS[state]), justify="right")
    states.add_column(f"utilisation, last {UTILISATION_WINDOW_MIN} min", justify="right")
    for workshop in sorted(snap.states):
        util = snap.utilisation.get(workshop, 0.0)
        bar = "█" * round(util * 20) + "░" * (20 - round(util * 20))
        states.add_row(workshop, *(_state_cell(s, snap.states[workshop][s]) for s in STATE_ORDER), f"{bar} {util:6.1%}")
    stops = Table(title=f"Stops by reason, last {UTILISATION_WINDOW_MIN} simulated minutes", expand=True)
    stops.add_column("reason")
    stops.add_column("stops", justify="right")
    stops.add_column("downtime, min", justify="right")
    for reason, count, minutes in snap.stops[:8]:
        stops.add_row(REASON_LABELS.get(reason, reason), str(count), f"{minutes:.1f}")
    rate_m = rate_p = 0.0
    if previous is not None:
        rate_m = max(0, snap.messages_in - previous.messages_in) / interval_s
        rate_p = max(0, snap.points_written - previous.points_written) / interval_s
    sim = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(snap.sim_now_ms / 1000))
    pipeline = Text.assemble(
        ("Pipeline  ", "bold"),
        f"simulated time {sim} UTC   ",
        f"messages {snap.messages_in} ({rate_m:,.0f}/s)   points {snap.points_written} ({rate_p:,.0f}/s)   ",
        (f"dead letters {snap.dead_letters}", "red" if snap.dead_letters else "green"),
    )
    parts: list[Table | Text | Panel] = [Text(header, style="bold cyan"), pipeline, states, stops]
    if snap.error:
        parts.append(Panel(snap.error, title="InfluxDB", style="red"))
    parts.append(Text("Ctrl-C stops everything cleanly.", style="dim"))
    return Group(*parts)
