"""Backfill: simulate a plant over a past period and write it straight to InfluxDB, skipping MQTT.

The same tracker and the same point mapping as the live path, so the stored history is what the pipeline
would have stored. For demos, board development and tests of boards and reports.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from ftel.contract.models import GatewayStatus, Message
from ftel.settings import InfluxSettings
from ftel.storage.lineproto import Point, encode_batch
from ftel.storage.points import to_points
from ftel.storage.writer import RetryPolicy, make_writer, write_with_retry
from gateway.runner import edges_between
from gateway.tracker import MachineTracker, Origin
from simulators.driver import SimulatedDriver
from simulators.machine import plant_models
from simulators.plant import Plant

BACKFILL_BATCH_POINTS = 20_000


def backfill(
    plant: Plant,
    influx: InfluxSettings,
    *,
    start_ms: int,
    end_ms: int,
    window_ms: int,
    telemetry_interval_ms: int,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> int:
    """Returns the number of points written."""
    writer = make_writer(influx)
    seq = itertools.count(1)
    pending: list[Point] = []
    written = 0

    def emit(messages: Sequence[Message]) -> None:
        nonlocal written
        for message in messages:
            pending.extend(to_points(message, received_ms=message.ts))
        if len(pending) >= BACKFILL_BATCH_POINTS:
            write_with_retry(writer, encode_batch(pending), RetryPolicy())
            written += len(pending)
            pending.clear()

    models = plant_models(plant, start_ms=start_ms)
    for workshop in plant.workshops:
        emit(
            [
                GatewayStatus(
                    site=plant.site,
                    workshop=workshop.id,
                    gateway_id=workshop.gateway_id,
                    seq=next(seq),
                    ts=start_ms,
                    online=True,
                    boot_id=start_ms,
                    machines={m.id: m.type for m in workshop.machines},
                )
            ]
        )
    times = sorted(
        {
            start_ms,
            end_ms,
            *edges_between(start_ms, end_ms, window_ms),
            *edges_between(start_ms, end_ms, telemetry_interval_ms),
        }
    )
    for index, (workshop_id, model) in enumerate(models):
        workshop = plant.workshop(workshop_id)
        driver = SimulatedDriver(model)
        tracker = MachineTracker(
            Origin(plant.site, workshop_id, workshop.gateway_id),
            driver.info,
            window_ms=window_ms,
            telemetry_interval_ms=telemetry_interval_ms,
            next_seq=lambda: next(seq),
        )
        emit([tracker.meta(start_ms)])
        for at in times:
            for reading in driver.read(at):
                emit(tracker.observe(reading))
        emit(tracker.close(end_ms))
        on_progress(index + 1, len(models))
    if pending:
        write_with_retry(writer, encode_batch(pending), RetryPolicy())
        written += len(pending)
    return written
