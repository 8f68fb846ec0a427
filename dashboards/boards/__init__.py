"""One module per board; ``BOARDS`` is every board in the order they are listed."""

from __future__ import annotations

from collections.abc import Callable

from dashboards.board import Board
from dashboards.boards import floor, machine, maintenance, orders, overview, pipeline

BOARDS: tuple[Callable[[], Board], ...] = (
    overview.board,
    floor.board,
    machine.board,
    maintenance.board,
    pipeline.board,
    orders.board,
)
