"""A board: fixed uid, title, variables and rows of panels, assembled into Grafana's dashboard model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as model

TAG = "ftel"
# A supervisor's default view is one shift.
DEFAULT_RANGE = ("now-8h", "now")
REFRESH = "1m"
GRID_COLUMNS = 24


@dataclass(frozen=True, slots=True)
class Row:
    title: str
    panels: Sequence[cogbuilder.Builder[model.Panel]]


@dataclass(frozen=True, slots=True)
class Board:
    uid: str
    title: str
    description: str
    variables: Sequence[cogbuilder.Builder[model.VariableModel]]
    rows: Sequence[Row]

    def dashboard(self, time_zone: str) -> model.Dashboard:
        """Grafana's dashboard model: panels numbered in order, laid out row by row on the 24-column grid, times
        shown in ``time_zone`` (the plant calendar's: a supervisor abroad sees the shifts as the plant does)."""
        builder = (
            dashboard.Dashboard(self.title)
            .uid(self.uid)
            .description(self.description)
            .tags([TAG])
            .editable()
            .time(*DEFAULT_RANGE)
            .refresh(REFRESH)
            .timezone(time_zone)
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .variables(list(self.variables))
            .link(
                dashboard.DashboardLink("Boards")
                .type(model.DashboardLinkType.DASHBOARDS)
                .tags([TAG])
                .as_dropdown(True)
                .include_vars(True)
                .keep_time(True)
            )
        )
        board = builder.build()
        board.panels = list(_laid_out(self.rows))
        return board


def _laid_out(rows: Sequence[Row]) -> Iterator[model.Panel | model.RowPanel]:
    """Rows one under another; panels left to right, wrapping to a new line when the next would not fit."""
    panel_id = 0
    y = 0
    for row in rows:
        panel_id += 1
        yield model.RowPanel(title=row.title, id_val=panel_id, grid_pos=model.GridPos(h=1, w=GRID_COLUMNS, x=0, y=y))
        y += 1
        x = 0
        line_height = 0
        for builder in row.panels:
            panel = builder.build()
            size = panel.grid_pos or model.GridPos()
            if x + size.w > GRID_COLUMNS:
                x, y, line_height = 0, y + line_height, 0
            panel_id += 1
            panel.id_val = panel_id
            panel.grid_pos = model.GridPos(h=size.h, w=size.w, x=x, y=y)
            x += size.w
            line_height = max(line_height, size.h)
            yield panel
        y += line_height
