"""The dashboards package's errors, under the project's root: each says what went wrong and what to do."""

from __future__ import annotations

from ftel.errors import FtelError


class DashboardError(FtelError):
    """Base of the dashboards package's errors (boards, their queries, report periods, publishing)."""


class BoardError(DashboardError):
    """A board failed its structural checks; nothing is written. The text lists each problem by board."""


class UnboundVariableError(DashboardError):
    """A statement uses a variable that is neither Grafana's own nor one of the board's (a bug in a board)."""


class PeriodError(DashboardError):
    """A period the user gave cannot be understood; the text says what is expected."""


class PublishError(DashboardError):
    """Publishing to Grafana failed; the text says why and what to do."""


class QueryShapeError(DashboardError, ValueError):
    """A reading or binding that cannot be (an empty range, an unknown resolution): the text says which part."""
