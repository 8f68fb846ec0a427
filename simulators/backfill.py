"""Backfill: simulate a plant over a past period and write it straight to InfluxDB, skipping MQTT.

The same gateway core (trackers, births) and the same point mapping as the live path, so the stored history is
what the pipeline would have stored. For demos, board development and tests of boards and reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ftel.contract.models import Message
from ftel.errors import FtelError
from ftel.plant.calendar import Calendar
from ftel.plant.layout import Plant
from ftel.plant.orders import OrderBook
from ftel.plant.reasons import MachineRef
from ftel.settings import InfluxSettings
from ftel.storage.lineproto import Point, encode_batch
from ftel.storage.points import job_point, to_points
from ftel.storage.writer import WriteError, direct_write_policy, make_writer, write_with_retry
from gateway.core import GatewayCore, GatewayTiming
from gateway.tracker import Origin
from operators.record import record_choice
from simulators.driver import SimulatedDriver
from simulators.jobs import simulated_job_changes
from simulators.machine import plant_models
from simulators.operators import OperatorPlay, simulated_choices

BACKFILL_BATCH_POINTS = 20_000


class BackfillError(FtelError):
    """InfluxDB did not store a batch of the backfill (refused it, or kept failing past the settings' cap)."""


def backfill(
    plant: Plant,
    influx: InfluxSettings,
    *,
    start_ms: int,
    end_ms: int,
    window_ms: int,
    telemetry_interval_ms: int,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
    calendar: Calendar | None = None,
    orders: OrderBook | None = None,
    operators: OperatorPlay | None = None,
) -> int:
    """Returns the number of points written. ``on_progress(machines done, machines)``; with a ``calendar`` the
    machines work only in its planned time; with ``orders`` knitting machines change jobs, each change written
    as the point whoever set it would write (simulators/jobs.py); with ``operators`` simulated operators give
    some unexplained stops a reason and correct a few, written as the operator page writes them. Each write is
    retried by the settings' ``direct_write_policy``; a BackfillError says when it gives up."""
    writer = make_writer(influx)
    policy = direct_write_policy(influx)
    pending: list[Point] = []
    written = 0

    def emit(messages: Sequence[Message]) -> None:
        nonlocal written
        for message in messages:
            pending.extend(to_points(message))
        if len(pending) >= BACKFILL_BATCH_POINTS:
            write_with_retry(writer, encode_batch(pending), policy)
            written += len(pending)
            pending.clear()

    models = plant_models(plant, start_ms=start_ms, calendar=calendar)
    # Every machine is read together at each edge (nothing schedules a machine's own sample): telemetry on the edge.
    timing = GatewayTiming(
        window_ms, telemetry_interval_ms, heartbeat_interval_ms=window_ms, tick_s=0.0, telemetry_spread=False
    )
    done = 0
    try:
        for workshop in plant.workshops:
            drivers = {m.spec.id: SimulatedDriver(m) for w, m in models if w == workshop.id}
            core = GatewayCore(
                Origin(plant.site, workshop.id, workshop.gateway_id),
                [d.info for d in drivers.values()],
                timing,
                boot_id=start_ms,
            )

            def read(at: int, core: GatewayCore = core, drivers: dict[str, SimulatedDriver] = drivers) -> None:
                emit(core.observe(at, {machine_id: d.read(at) for machine_id, d in drivers.items()}))

            read(start_ms)
            emit([*core.metas(start_ms), core.birth()])
            for at in core.read_times(start_ms, end_ms):
                read(at)
            emit(core.close(end_ms))
            for w, model in models:
                if w == workshop.id and orders is not None:
                    pending.extend(
                        job_point(change, site=plant.site, workshop=w, machine_type=model.spec.type.value)
                        for change in simulated_job_changes(model, orders, end_ms=end_ms, window_ms=window_ms)
                    )
            for w, model in models:
                if w == workshop.id and operators is not None:
                    machine = MachineRef(plant.site, w, model.spec.type, model.spec.id)
                    for choice in simulated_choices(model, machine, operators, end_ms=end_ms):
                        record_choice(writer, choice, policy)  # the page's own write
                        written += 2
            done += len(drivers)
            on_progress(done, len(models))
        if pending:
            write_with_retry(writer, encode_batch(pending), policy)
            written += len(pending)
    except WriteError as error:
        given_up = f"still failing after {influx.write_retry_max_total_s:g} s, given up" if error.transient else ""
        raise BackfillError(
            f"backfill stopped: InfluxDB did not store a batch ({error}{'; ' + given_up if given_up else ''}); "
            f"{written} points were stored before it. Run the same backfill again once InfluxDB takes writes (points "
            "are idempotent: nothing counts twice)"
            + (", or allow longer with FTEL_INFLUX__WRITE_RETRY_MAX_TOTAL_S" if error.transient else "")
        ) from error
    finally:
        writer.close()
    return written
