"""The two sides of the verdict: the ledger's figures per machine (from the seeded models) and InfluxDB's
(from the stored points), one workshop at a time so memory stays small at a county's fleet."""

from __future__ import annotations

from collections.abc import Callable

from ftel.contract.states import STATE_ORDER, state_field
from ftel.plant.layout import Plant
from ftel.security.influx import quote_string
from ftel.storage.query import InfluxQuery
from ftel.storage.schema import Field, Measurement, Tag
from loadtest.verdict import Figures, MachineFigures, add_ledger_row
from simulators.ledger import machine_ledger
from simulators.machine import plant_models


def expected_figures(
    plant: Plant, *, start_ms: int, end_ms: int, window_ms: int, on_workshop: Callable[[int], None] | None = None
) -> Figures:
    """Per machine: the ledger's windows and quantities, and its state changes in (start, end) (a machine's
    first state is not a change: the gateway saw none either)."""
    figures: Figures = {}
    for index, workshop in enumerate(plant.workshops):
        for _, model in plant_models(plant, start_ms=start_ms, workshop=workshop.id):
            for row in machine_ledger(model, site=plant.site, workshop=workshop.id, end_ms=end_ms, window_ms=window_ms):
                add_ledger_row(figures, row)
            machine = figures.setdefault(model.spec.id, MachineFigures())
            for segment in model.segments():
                if segment.start_ms >= end_ms:
                    break
                machine.changes += segment.start_ms > start_ms
        if on_workshop:
            on_workshop(index + 1)
    return figures


def stored_figures(
    query: InfluxQuery,
    plant: Plant,
    *,
    start_ms: int,
    end_ms: int,
    on_workshop: Callable[[int], None] | None = None,
) -> Figures:
    """Per machine of ``plant`` (its site only: other data in the database is not looked at): the stored
    windows and their quantities, downtime per reason, and state changes."""
    figures: Figures = {}
    sums = ", ".join(f'sum("{state_field(s)}") AS "{s.value}"' for s in STATE_ORDER)
    for index, workshop in enumerate(plant.workshops):
        where = f'"{Tag.SITE}" = {quote_string(plant.site)} AND "{Tag.WORKSHOP}" = {quote_string(workshop.id)}'
        span = f"time >= {start_ms}ms AND time < {end_ms}ms"
        for row in query.rows(
            f'SELECT {sums}, sum("{Field.UNITS}") AS "units", sum("{Field.DEFECTS}") AS "defects", '
            f'count("{Field.WINDOW_MS}") AS "windows" '
            f'FROM "{Measurement.STATE_TIME}" WHERE {where} AND {span} GROUP BY "{Tag.MACHINE_ID}"'
        ):
            machine = figures.setdefault(row[Tag.MACHINE_ID], MachineFigures())
            for name in [s.value for s in STATE_ORDER] + ["units", "defects"]:
                machine.quantities[name] += int(row[name] or 0)
            machine.windows += int(row["windows"] or 0)
        for row in query.rows(
            f'SELECT sum("{Field.STOPS}") AS "stops", sum("{Field.DOWN_MS}") AS "down" FROM "{Measurement.DOWNTIME}" '
            f'WHERE {where} AND {span} GROUP BY "{Tag.MACHINE_ID}", "{Tag.REASON}"'
        ):
            machine = figures.setdefault(row[Tag.MACHINE_ID], MachineFigures())
            machine.quantities[f"stops:{row[Tag.REASON]}"] += int(row["stops"] or 0)
            machine.quantities[f"down:{row[Tag.REASON]}"] += int(row["down"] or 0)
        # A state change carries prev_duration_ms; a birth's re-statement and a death's OFFLINE do not.
        for row in query.rows(
            f'SELECT count("{Field.PREV_DURATION_MS}") AS "n" FROM "{Measurement.MACHINE_STATE}" WHERE {where} '
            f'AND time > {start_ms}ms AND time < {end_ms}ms GROUP BY "{Tag.MACHINE_ID}"'
        ):
            figures.setdefault(row[Tag.MACHINE_ID], MachineFigures()).changes += int(row["n"] or 0)
        if on_workshop:
            on_workshop(index + 1)
    return figures
