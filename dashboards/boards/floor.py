"""Workshop floor: a grid of current states and a state timeline of every machine."""

from __future__ import annotations

from dashboards import panels as p
from dashboards import queries as q
from dashboards.board import Board, Row

UID = "ftel-floor"


def board() -> Board:
    return Board(
        uid=UID,
        title="Workshop floor",
        description="Every machine of one workshop: its state now and its states over the range.",
        # One workshop at a time: a grid and a timeline of a county's machines would answer nobody.
        variables=p.machine_variables(single={q.WORKSHOP}),
        rows=[
            Row(
                "Floor",
                [
                    p.state_grid(
                        "Machines now",
                        "Each machine in the colour of its state at the range end.",
                        q.current_state_codes(),
                    ),
                    p.state_timeline(
                        "State timeline",
                        "State changes of every machine over the range.",
                        q.state_changes(),
                        h=18,
                    ),
                ],
            )
        ],
    )
