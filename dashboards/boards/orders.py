"""Orders and styles: what each machine is on now, performance per style against its standard, pieces per order
over the range and each order's progress with its estimated finish (docs/boards.md). Per style and per order the
board reads the settled points (dashboards/orders_rollup.py: the windows split exactly at job changes)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import table

from dashboards import panels as p
from dashboards import queries as q
from dashboards.board import Board, Row

UID = "ftel-orders"


def jobs_now() -> table.Panel:
    return p.table_panel(
        "Style and order now",
        "Each machine's style and order at the range end, since when, and who set it (controller, operator, "
        "simulator).",
        q.current_jobs(),
        w=24,
        transformations=[
            p.organise(
                {
                    "Time": "Since",
                    "machine_id": "Machine",
                    "workshop": "Workshop",
                    "style": "Style",
                    "order": "Order",
                    "source": "Set by",
                    "set_by": "Who",
                },
                hide=(),
            )
        ],
    ).override_by_name("Since", p.unit_is("dateTimeAsLocal"))


def styles() -> table.Panel:
    return p.table_panel(
        "Performance per style",
        "Over the range: pieces made, defects, running hours, seconds of running per piece, and performance = "
        "the style's standard time for the pieces made / the running time they took (1 = at the standard).",
        q.style_performance(),
        transformations=[
            p.organise(
                {
                    "style": "Style",
                    "pieces": "Pieces",
                    "defects": "Defects",
                    "running_hours": "Running hours",
                    "s_per_piece": "s per piece",
                    "performance": "Performance",
                }
            )
        ],
    ).override_by_name("Performance", p.unit_is("percentunit"))


def orders() -> table.Panel:
    return p.table_panel(
        "Pieces per order",
        "Over the range: pieces, defects and good pieces per order, on how many machines (an order spans machines).",
        q.order_pieces(),
        transformations=[
            p.organise(
                {"order": "Order", "pieces": "Pieces", "defects": "Defects", "good": "Good", "machines": "Machines"}
            )
        ],
    )


def progress() -> table.Panel:
    return (
        p.table_panel(
            "Order progress",
            "Good pieces to date against the target, and the estimated finish at the last settled period's rate of "
            "good pieces (blank: nothing made in that period), as of the range end.",
            q.order_progress(),
            w=24,
            transformations=[
                p.organise(
                    {
                        "order": "Order",
                        "style": "Style",
                        "good_to_date": "Good to date",
                        "target": "Target",
                        "progress": "Progress",
                        "estimated_finish_ms": "Estimated finish",
                        "machines": "Machines",
                    }
                )
            ],
        )
        .override_by_name("Progress", p.unit_is("percentunit"))
        .override_by_name("Estimated finish", p.unit_is("dateTimeAsLocal"))
    )


def board() -> Board:
    return Board(
        uid=UID,
        title="Orders and styles",
        description="Which style and order each machine is on, performance per style, pieces and progress per order.",
        variables=p.machine_variables(),
        rows=[Row("Now", [jobs_now()]), Row("Over the range", [styles(), orders()]), Row("Orders", [progress()])],
    )
